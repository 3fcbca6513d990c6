"""The verifier daemon on a real chain: it draws, audits, gives verdicts that become final after the
challenge window; honest jobs pass and pay, cheats are slashed; and the edges (a missed deadline, a
restart, a broken re-execution, a job drawn to someone else)."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import Devnet, revert, snapshot
from marketplace.errors import StoreUnavailableError
from marketplace.jobspec import JobSpec
from marketplace.keystore import save_account
from marketplace.protocol import BPS, ZERO_HASH, CreditKind, JobState, Role, Verdict, secret_hash
from marketplace.results import MerkleTree, output_manifest
from provider.factory import create_daemon
from provider.runtime import Runtime
from tests.conftest import Chain
from tests.support.cheats import CheatingRuntime
from tests.support.epochs import into_sync_phase, outside_sync_phase, seed_readable, wait_drawn
from tests.support.jobs import PASSWORD, TEXTS, Market, StoreNode
from tests.support.waiting import wait_for
from verifier.config import VerifierConfig
from verifier.daemon import VerifierDaemon
from verifier.factory import create_verifier
from verifier.journal import AuditStage

# Every task sampled: the audit's outcome does not depend on the seed, so every run takes one path. The
# price keeps the sampled work (all of it) under the contract's cap on a sample's value (6.25 WEBI).
AUDIT_ALL: dict[str, Any] = {"sample_tasks": len(TEXTS), "price": 5 * WEI}


@pytest.fixture
def make_verifier(tmp_path: Path, devnet: Devnet, store_node: StoreNode, deployments: Path, chain: Chain):
    def make(account: LocalAccount, **settings: Any) -> VerifierDaemon:
        """A verifier daemon for ``account`` as its factory builds it; ``settings`` override the config
        (another ``store`` URL, ``max_parallel_audits``, ``unavailable_grace_s``, ...)."""
        folder = tmp_path / f"verifier-{account.address[:8]}"
        folder.mkdir(exist_ok=True)
        keystore = folder / "keystore.json"
        if not keystore.exists():
            save_account(account, keystore, PASSWORD, kdf="pbkdf2", iterations=1_000)
            (folder / "password").write_text(PASSWORD)
        fields: dict[str, Any] = {"store": store_node.url, "dtype": "bfloat16", "poll_interval_s": 0.1, **settings}
        config = VerifierConfig(rpc_url=devnet.anvil.rpc_url, keystore=keystore, password_file=folder / "password",
                                state_dir=folder / "state", deployments_dir=deployments, **fields)
        return create_verifier(config, account)

    return make


def seed_visible(chain: Chain, job_id: int) -> None:
    """Waits for the provider's result, then mines past the seed block, so that a daemon can read the
    seed (anvil mines only on transactions), until one draws (again after a re-arm). Blocks come when
    the test says, not on a timer: the same blocks in the same order on every run."""
    wait_for(lambda: state_of(chain, job_id) == JobState.SUBMITTED, timeout=120, what="the submission")
    wait_drawn(chain, job_id)


@contextmanager
def running(*daemons) -> Iterator[None]:
    threads = [threading.Thread(target=daemon.run) for daemon in daemons]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        for daemon in daemons:
            daemon.stop()
        for thread in threads:
            thread.join(timeout=60)
        for daemon in daemons:
            daemon.close()


def state_of(chain: Chain, job_id: int) -> JobState:
    return chain.market.get_job(job_id).state


def settled(chain: Chain, job_id: int) -> None:
    """Waits for the verdict, then moves the clock past the challenge window; a daemon then finalizes."""
    wait_for(lambda: state_of(chain, job_id) == JobState.AUDITED, timeout=120, what="a verdict")
    chain.increase_time(chain.market.terms_of(job_id).challenge_window + 1)
    wait_for(lambda: state_of(chain, job_id) in (JobState.FINALIZED, JobState.REJECTED), timeout=60,
             what="the settlement")


@pytest.mark.parametrize(("kind", "strategy"), [("embed", None), ("generate", None), ("classify", "random"),
                                                ("embed", "other-model"), ("generate", "truncated"),
                                                ("summarize", "replay"), ("classify", "half")])
def test_verdicts_on_chain(chain: Chain, market: Market, config_for, make_verifier, requester, provider,
                           verifier, kind, strategy, tmp_path) -> None:
    chain.register(verifier, Role.VERIFIER, 1_000 * WEI)
    providing = create_daemon(config_for(provider), provider)
    if strategy is not None:
        other = str(market.store.add_path(market.bundles[kind], recursive=True).cid)
        if strategy == "other-model":
            from tests.support.models import build_bundle

            other = str(market.store.add_path(build_bundle(kind, tmp_path / "other", seed=7), recursive=True).cid)
        providing.runtime = CheatingRuntime(providing.store, tmp_path / "cheat-cache", strategy=strategy,
                                            other_model=other)
    auditing = make_verifier(verifier)
    stake_before = chain.market.provider_stake(provider.address).stake
    with running(providing, auditing):
        job_id = market.post(requester, kind, **AUDIT_ALL)
        seed_visible(chain, job_id)
        settled(chain, job_id)
        wait_for(lambda: auditing.journal.get(job_id).stage == AuditStage.SETTLED, what="the verifier to see it")
    record = auditing.journal.get(job_id)
    assert record is not None and record.verdict_tx
    evidence = json.loads(market.read(record.evidence_cid))
    assert evidence["sampled_tasks"] == list(range(len(TEXTS))) and "thresholds" in evidence
    assert evidence["version"] == 2 and evidence["outputs_source"] == "store" and evidence["rule"]
    assert evidence["references"]["a"]["dtype"] == "bfloat16" and evidence["references"]["b"]["dtype"] == "float32"
    assert evidence["verdict"] == ("pass" if strategy is None else "fail") == record.verdict
    assert all(check["a_vs_b"]["within"] for check in evidence["checks"] if check["a_vs_b"]), "a stable model"
    credited = {entry["args"]["kind"]: entry["args"] for entry in
                chain.market.contract.events.Credited().get_logs(from_block=0, argument_filters={"jobId": job_id})}
    terms = chain.market.terms_of(job_id)
    assert credited[CreditKind.VERIFIER_FEE]["account"] == verifier.address
    assert credited[CreditKind.VERIFIER_FEE]["amount"] == terms.audit_fee
    if strategy is None:
        assert state_of(chain, job_id) == JobState.FINALIZED and record.passed
        assert chain.market.audit_of(job_id).verdict == Verdict.PASS
        assert credited[CreditKind.PROVIDER_PAYMENT]["account"] == provider.address
    else:
        assert state_of(chain, job_id) == JobState.REJECTED and record.passed is False
        assert chain.market.audit_of(job_id).verdict == Verdict.FAIL
        assert chain.market.provider_stake(provider.address).stake == stake_before - terms.collateral
        assert CreditKind.PROVIDER_PAYMENT not in credited
        assert credited[CreditKind.REFUND] == {"account": requester.address, "jobId": job_id,
                                               "kind": CreditKind.REFUND, "amount": terms.price}
        reward = terms.collateral * chain.market.params().reward_bps // BPS
        assert credited[CreditKind.REWARD]["account"] == verifier.address
        assert credited[CreditKind.REWARD]["amount"] == reward


def test_the_verifier_draws_itself_and_fails_a_root_that_does_not_match(chain: Chain, market: Market,
                                                                         make_verifier, requester, provider,
                                                                         verifier, tmp_path) -> None:
    """No provider daemon here: the verifier's own ``lockSeed`` draws the job, and its secret picks the sample."""
    chain.register(verifier, Role.VERIFIER, 1_000 * WEI)
    chain.register(provider, Role.PROVIDER, 10_000 * WEI)
    job_id = market.post(requester, "embed", **AUDIT_ALL)
    spec = JobSpec.model_validate_json(market.read(chain.market.spec_cid(job_id)))
    outputs = Runtime(market.store, tmp_path / "cache").run(spec, TEXTS)
    output_cid = market.store.add_bytes(output_manifest(outputs)).cid
    chain.market.claim_job(provider, job_id)
    other_root = MerkleTree([*outputs[1:], outputs[0]]).root
    chain.market.submit_result(provider, job_id, str(output_cid), other_root)
    auditing = make_verifier(verifier)
    with running(auditing):
        wait_drawn(chain, job_id)
        wait_for(lambda: state_of(chain, job_id) == JobState.AUDITED, what="the verdict")
    drawn = chain.market.contract.events.VerifierDrawn().get_logs(from_block=0, argument_filters={"jobId": job_id})
    assert chain.client.w3.eth.get_transaction(drawn[0]["transactionHash"])["from"] == verifier.address
    audit = chain.market.audit_of(job_id)
    assert (audit.verifier, audit.verdict, audit.revealed) == (verifier.address, Verdict.FAIL, True)
    assert chain.market.secret_of(verifier.address) == secret_hash(chain.secret(verifier, 1)), "the next secret"
    assert b"not under the committed root" in market.read(auditing.journal.get(job_id).evidence_cid)


def test_a_missed_deadline_is_journaled_and_the_redraw_audited(chain: Chain, market: Market, config_for,
                                                               make_verifier, requester, provider,
                                                               verifier) -> None:
    chain.register(verifier, Role.VERIFIER, 1_000 * WEI)
    config = config_for(provider)
    with running(create_daemon(config, provider)):
        job_id = market.post(requester, "classify", **AUDIT_ALL)
        seed_visible(chain, job_id)  # the provider's draw
    # The provider is stopped while the deadline passes and the verifier looks, so that the verifier
    # finds its deadline passed (missed) on every run, rather than racing the provider's redraw.
    chain.increase_time(chain.market.terms_of(job_id).audit_window + 1)
    late = make_verifier(verifier)
    late.step()
    record = late.journal.get(job_id)
    late.close()
    assert record.stage == AuditStage.MISSED and state_of(chain, job_id) == JobState.SUBMITTED
    with running(create_daemon(config, provider)):  # restarted from its journal, it redraws, then draws again
        wait_for(lambda: not chain.market.audit_of(job_id).drawn, what="the provider's redraw")
        assert wait_drawn(chain, job_id).draws == 2, "the second draw"
        auditing = make_verifier(verifier)  # the same journal: the redraw reopens the job
        with running(auditing):
            settled(chain, job_id)
            wait_for(lambda: auditing.journal.get(job_id).stage == AuditStage.SETTLED, what="the verifier")
    assert state_of(chain, job_id) == JobState.FINALIZED
    fee = chain.market.terms_of(job_id).audit_fee
    assert chain.market.credits(verifier.address) == fee, "paid for the audit it did, once"
    stake = chain.market.verifier_stake(verifier.address).stake
    no_show = chain.market.params().no_show_slash_bps
    assert stake == 1_000 * WEI * (BPS - no_show) // BPS, "slashed for the one it missed"


def test_restart_mid_audit_submits_the_same_evidence(chain: Chain, market: Market, config_for, make_verifier,
                                                     requester, provider, verifier, monkeypatch) -> None:
    chain.register(verifier, Role.VERIFIER, 1_000 * WEI)
    providing = create_daemon(config_for(provider), provider)
    with running(providing):
        job_id = market.post(requester, "embed", **AUDIT_ALL)
        seed_visible(chain, job_id)
        first = make_verifier(verifier)

        def lost_connection(*args, **kwargs):
            raise StoreUnavailableError("connection lost before the verdict was sent")

        monkeypatch.setattr(first.market, "submit_verdict", lost_connection)
        first.step()
        checked = first.journal.get(job_id)
        assert checked.stage == AuditStage.CHECKED and checked.evidence_cid and checked.draw == 1
        first.close()
        second = make_verifier(verifier)
        second.step()
        done = second.journal.get(job_id)
        second.close()
    assert done.stage == AuditStage.VERDICT and done.evidence_cid == checked.evidence_cid
    assert state_of(chain, job_id) == JobState.AUDITED
    assert chain.market.audit_of(job_id).verdict == Verdict.PASS


def test_a_re_execution_that_breaks_is_retried_and_stops_nothing(chain: Chain, market: Market, config_for,
                                                                 make_verifier, requester, provider, verifier,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """The verifier's own failure (here the first re-execution raises, as an out-of-memory error would)
    is neither a verdict against the provider nor the end of the daemon: it backs off, retries, and
    the job gets its verdict."""
    chain.register(verifier, Role.VERIFIER, 1_000 * WEI)
    providing = create_daemon(config_for(provider), provider)
    auditing = make_verifier(verifier)
    real_run, failures = auditing.runtime.run, []

    def breaks_once(*args, **kwargs):
        if not failures:
            failures.append(1)
            raise RuntimeError("CUDA out of memory (simulated)")
        return real_run(*args, **kwargs)

    auditing.runtime.run = breaks_once  # type: ignore[method-assign]
    with running(providing, auditing):
        job_id = market.post(requester, "embed", **AUDIT_ALL)
        seed_visible(chain, job_id)
        wait_for(lambda: state_of(chain, job_id) == JobState.AUDITED, timeout=120, what="the verdict after a retry")
        wait_for(lambda: auditing.journal.get(job_id).stage == AuditStage.VERDICT, what="the journal")
    record = auditing.journal.get(job_id)
    assert failures and record.passed and chain.market.audit_of(job_id).verdict == Verdict.PASS
    assert any("re-execution failed" in entry.getMessage() and entry.exc_info for entry in caplog.records)


def test_a_job_drawn_to_another_verifier_is_left_to_it(chain: Chain, market: Market, make_verifier, requester,
                                                        provider, verifier) -> None:
    """The requester also runs a verifier; the draw never picks a job's own parties, so the other verifier
    audits, and the requester's daemon journals the job as not its own."""
    chain.register(verifier, Role.VERIFIER, 1_000 * WEI)
    chain.register(requester, Role.VERIFIER, 5_000 * WEI)
    chain.register(provider, Role.PROVIDER, 10_000 * WEI)
    # The seed block, the blocks on top and the daemon's lockSeed all in one draw phase: no re-arm.
    outside_sync_phase(chain, 8)
    job_id = chain.submitted_job(requester, provider)
    seed_readable(chain, chain.market.get_job(job_id).seed_block)
    daemon = make_verifier(requester)
    daemon.step()
    record = daemon.journal.get(job_id)
    daemon.close()
    assert record.stage == AuditStage.NOT_OURS and verifier.address in record.reason
    assert chain.market.audit_of(job_id).verifier == verifier.address


def test_a_staked_verifier_without_a_secret_commits_one(chain: Chain, make_verifier, verifier) -> None:
    """Registered without a commitment it would never be drawn: the daemon commits secret #0 first, and
    (committed outside a sync phase) syncs its weight into the draw in the next sync phase."""
    outside_sync_phase(chain, 3)  # the approval, the registration and the commitment
    chain.approve(verifier)
    chain.market.register(verifier, Role.VERIFIER, 1_000 * WEI)
    assert chain.market.secret_of(verifier.address) == ZERO_HASH and chain.market.verifier_weight(verifier.address) == 0
    daemon = make_verifier(verifier)
    try:
        daemon.step()
        assert chain.market.secret_of(verifier.address) == secret_hash(chain.secret(verifier, 0))
        assert chain.market.verifier_weight(verifier.address) == 0, "not in the draw before a sync phase"
        into_sync_phase(chain)
        daemon.step()
        assert chain.market.verifier_weight(verifier.address) == 1_000 * WEI
        synced = chain.market.contract.events.WeightChanged().get_logs(
            from_block=chain.block_number(), argument_filters={"verifier": verifier.address})
        assert [entry["args"]["weight"] for entry in synced] == [1_000 * WEI]
        assert chain.client.w3.eth.get_transaction(synced[0]["transactionHash"])["from"] == verifier.address
        daemon.step()  # up to date: no second sync
        assert chain.block_number() == synced[0]["blockNumber"]
    finally:
        daemon.close()


def test_a_lagging_node_does_not_close_a_record_for_good(chain: Chain, make_verifier, requester, provider,
                                                         verifier, monkeypatch: pytest.MonkeyPatch) -> None:
    """A node behind the one that served the ``ResultSubmitted`` event (a load balancer's other backend)
    still reports the job claimed: a state before ``Submitted`` is no reason to close the record, and the
    next pass, on a node that caught up, draws the verifier."""
    chain.register(verifier, Role.VERIFIER, 1_000 * WEI)
    chain.register(provider, Role.PROVIDER, 10_000 * WEI)
    outside_sync_phase(chain, 8)
    job_id = chain.submitted_job(requester, provider)
    seed_readable(chain, chain.market.get_job(job_id).seed_block)
    daemon = make_verifier(verifier)
    real_get_job = daemon.market.get_job
    monkeypatch.setattr(daemon.market, "get_job",
                        lambda job: dataclasses.replace(real_get_job(job), state=JobState.CLAIMED))
    try:
        daemon.step()
        lagging = daemon.journal.get(job_id)
        monkeypatch.setattr(daemon.market, "get_job", real_get_job)
        daemon.journal.update(job_id, retry_at=0.0)
        daemon.step()
        caught_up = daemon.journal.get(job_id)
    finally:
        daemon.close()
    assert lagging.stage == AuditStage.WAITING and "claimed" not in lagging.reason
    assert caught_up.stage not in (AuditStage.CLOSED, AuditStage.NOT_OURS)
    assert chain.market.audit_of(job_id).verifier == verifier.address, "the caught-up pass drew the verifier"


def test_a_pass_that_raises_does_not_hang_the_shutdown(make_verifier, verifier,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in a pass ends ``run()`` with its error; the audit workers are told to stop and joined at once."""
    daemon = make_verifier(verifier, max_parallel_audits=2)

    def broken() -> None:
        raise RuntimeError("a bug in the pass (simulated)")

    monkeypatch.setattr(daemon, "step", broken)
    raised: list[BaseException] = []

    def serve() -> None:
        try:
            daemon.run()
        except RuntimeError as error:
            raised.append(error)

    thread = threading.Thread(target=serve)
    thread.start()
    thread.join(timeout=60)
    try:
        assert not thread.is_alive(), "run() hung after its pass raised"
        assert raised and "simulated" in str(raised[0])
        assert daemon.stopping.is_set() and not daemon.pool.started
    finally:
        daemon.close()


def test_the_account_key_is_not_in_the_secrets_repr(make_verifier, verifier) -> None:
    daemon = make_verifier(verifier)
    try:
        shown = repr(daemon.secrets)
    finally:
        daemon.close()
    assert bytes(verifier.key).hex() not in shown and str(bytes(verifier.key)) not in shown
    assert "chain_id" in shown


def _step_until(daemon: VerifierDaemon, condition, what: str) -> None:
    wait_for(lambda: (daemon.step(), condition())[1], timeout=120, what=what)


def test_a_verdict_a_reorg_removed_is_audited_and_given_again(chain: Chain, market: Market, config_for,
                                                              make_verifier, requester, provider, verifier) -> None:
    # Found with scripts/chaos.py: a journaled verdict whose block a reorg replaced was followed forever
    # ("a lagging node"), and the honest verifier would have missed its deadline and been slashed.
    chain.register(verifier, Role.VERIFIER, 1_000 * WEI)
    with running(create_daemon(config_for(provider), provider)):
        job_id = market.post(requester, "embed", **AUDIT_ALL)
        seed_visible(chain, job_id)
    fork = snapshot(chain.client)
    auditing = make_verifier(verifier)
    try:
        _step_until(auditing, lambda: auditing.journal.get(job_id).stage == AuditStage.VERDICT, "the first verdict")
        revert(chain.client, fork)  # the verdict's block is replaced: the job is submitted and drawn to us again
        assert state_of(chain, job_id) == JobState.SUBMITTED
        _step_until(auditing, lambda: state_of(chain, job_id) == JobState.AUDITED, "the verdict again")
        record = auditing.journal.get(job_id)
    finally:
        auditing.close()
    assert chain.market.audit_of(job_id).verdict == Verdict.PASS
    assert record.stage == AuditStage.VERDICT  # sent again: the same nonce and call, so the same tx hash
    assert chain.client.w3.eth.get_transaction_receipt(record.verdict_tx)["status"] == 1


def test_a_submission_a_reorg_replaced_is_audited_as_the_chain_holds_it(chain: Chain, market: Market, config_for,
                                                                        make_verifier, requester, provider,
                                                                        verifier) -> None:
    # After a reorg the journaled output CID and root can be another submission's: auditing them would judge
    # outputs the chain never committed to, and fail the honest provider whose proofs do not match.
    chain.register(verifier, Role.VERIFIER, 1_000 * WEI)
    with running(create_daemon(config_for(provider), provider)):
        job_id = market.post(requester, "embed", **AUDIT_ALL)
        seed_visible(chain, job_id)
    auditing = make_verifier(verifier)
    try:
        auditing.poll()
        stale = str(market.store.add_bytes(b'{"stale": true}\n').cid)
        auditing.journal.update(job_id, output_cid=stale, result_root="ab" * 32)  # the replaced chain's
        _step_until(auditing, lambda: auditing.journal.get(job_id).stage == AuditStage.VERDICT, "the verdict")
        record = auditing.journal.get(job_id)
    finally:
        auditing.close()
    assert record.result_root == chain.market.result_root(job_id).hex() and record.output_cid != stale
    assert record.verdict == "pass" and chain.market.audit_of(job_id).verdict == Verdict.PASS


def test_a_draw_a_reorg_takes_away_before_the_verdict_is_waited_for_not_given_up(
        chain: Chain, market: Market, config_for, make_verifier, requester, provider, verifier) -> None:
    # Found by scripts/chaos.py: the reorg came between the verifier's audit and its verdict. submitVerdict said
    # NotAssignedVerifier (nobody was drawn any more), the record ended "missed", and the redraw was never audited.
    chain.register(verifier, Role.VERIFIER, 1_000 * WEI)
    with running(create_daemon(config_for(provider), provider)):  # the provider draws (lockSeed)
        job_id = market.post(requester, "embed", **AUDIT_ALL)
        wait_for(lambda: state_of(chain, job_id) == JobState.SUBMITTED, timeout=120, what="the submission")
        before_draw = snapshot(chain.client)
        wait_drawn(chain, job_id)
        auditing = make_verifier(verifier)
        submit = auditing.market.submit_verdict

        def after_a_reorg(*args, **kwargs):
            auditing.market.submit_verdict = submit
            revert(chain.client, before_draw)  # the draw's block is replaced: nobody is drawn now
            return submit(*args, **kwargs)

        auditing.market.submit_verdict = after_a_reorg
        try:
            _step_until(auditing, lambda: auditing.market.submit_verdict is submit, "the verdict refused")
            assert auditing.journal.get(job_id).stage == AuditStage.WAITING  # not "missed"
            wait_drawn(chain, job_id)
            _step_until(auditing, lambda: state_of(chain, job_id) == JobState.AUDITED, "the verdict on the redraw")
        finally:
            auditing.close()
    assert chain.market.audit_of(job_id).verdict == Verdict.PASS
