"""The verifier daemon on a real chain: honest jobs pass and pay, cheats are slashed, and the edges."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import Devnet
from marketplace.errors import StoreUnavailableError
from marketplace.jobspec import JobSpec
from marketplace.keystore import save_account
from marketplace.protocol import CreditKind, JobState, Role
from marketplace.results import MerkleTree, output_manifest
from provider.factory import create_daemon
from provider.runtime import Runtime
from tests.conftest import Chain
from tests.support.cheats import CheatingRuntime
from tests.support.jobs import PASSWORD, TEXTS, Market, StoreNode
from tests.support.waiting import wait_for
from verifier.config import VerifierConfig
from verifier.daemon import VerifierDaemon
from verifier.factory import create_verifier
from verifier.journal import AuditStage

AUDIT_ALL = {"sample_rate_bps": 10_000, "sample_tasks": len(TEXTS)}


@pytest.fixture
def make_verifier(tmp_path: Path, devnet: Devnet, store_node: StoreNode, deployments: Path, chain: Chain):
    def make(account: LocalAccount) -> VerifierDaemon:
        folder = tmp_path / f"verifier-{account.address[:8]}"
        folder.mkdir(exist_ok=True)
        keystore = folder / "keystore.json"
        if not keystore.exists():
            save_account(account, keystore, PASSWORD, kdf="pbkdf2", iterations=1_000)
            (folder / "password").write_text(PASSWORD)
        config = VerifierConfig(rpc_url=devnet.anvil.rpc_url, keystore=keystore, password_file=folder / "password",
                                store=store_node.url, state_dir=folder / "state", deployments_dir=deployments,
                                dtype="bfloat16", poll_interval_s=0.1)
        return create_verifier(config, account)

    return make


@contextmanager
def block_production(chain: Chain, interval: float = 0.2) -> Iterator[None]:
    """A block every ``interval`` seconds, as on a live chain (anvil here only mines on transactions)."""
    done = threading.Event()

    def produce() -> None:
        while not done.wait(interval):
            chain.client.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    thread = threading.Thread(target=produce)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


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
    with block_production(chain), running(providing, auditing):
        job_id = market.post(requester, kind, **AUDIT_ALL)
        wait_for(lambda: state_of(chain, job_id) in (JobState.FINALIZED, JobState.REJECTED), timeout=120,
                 what="a verdict")
    record = auditing.journal.get(job_id)
    assert record is not None and record.stage == AuditStage.VERDICT
    evidence = market.read(record.evidence_cid)
    assert b'"sampled_tasks"' in evidence and b'"thresholds"' in evidence
    credited = {entry["args"]["kind"]: entry["args"] for entry in
                chain.market.contract.events.Credited().get_logs(from_block=0, argument_filters={"jobId": job_id})}
    if strategy is None:
        assert state_of(chain, job_id) == JobState.FINALIZED and record.passed
        assert credited[CreditKind.VERIFIER_FEE]["account"] == verifier.address
        assert credited[CreditKind.PROVIDER_PAYMENT]["account"] == provider.address
    else:
        assert state_of(chain, job_id) == JobState.REJECTED and record.passed is False
        assert chain.market.provider_stake(provider.address).stake < stake_before
        assert CreditKind.PROVIDER_PAYMENT not in credited
        refunds = [args for kind_, args in credited.items() if args["account"] == requester.address]
        assert refunds, "the requester is refunded"


def test_a_root_that_does_not_match_the_outputs_fails(chain: Chain, market: Market, make_verifier, requester,
                                                      provider, verifier, tmp_path) -> None:
    chain.register(verifier, Role.VERIFIER, 1_000 * WEI)
    chain.register(provider, Role.PROVIDER, 10_000 * WEI)
    job_id = market.post(requester, "embed", **AUDIT_ALL)
    spec = JobSpec.model_validate_json(market.read(chain.market.spec_cid(job_id)))
    outputs = Runtime(market.store, tmp_path / "cache").run(spec, TEXTS)
    output_cid = market.store.add_bytes(output_manifest(outputs)).cid
    chain.market.claim_job(provider, job_id)
    other_root = MerkleTree([*outputs[1:], outputs[0]]).root
    chain.market.submit_result(provider, job_id, str(output_cid), other_root)
    chain.mine(2)
    auditing = make_verifier(verifier)
    with running(auditing):
        wait_for(lambda: state_of(chain, job_id) == JobState.REJECTED, what="the rejection")
    assert b"not under the committed root" in market.read(auditing.journal.get(job_id).evidence_cid)


def test_a_verifier_that_misses_its_window_changes_nothing(chain: Chain, market: Market, config_for, make_verifier,
                                                           requester, provider, verifier) -> None:
    chain.register(verifier, Role.VERIFIER, 1_000 * WEI)
    providing = create_daemon(config_for(provider), provider)
    with running(providing):
        job_id = market.post(requester, "classify", **AUDIT_ALL)
        wait_for(lambda: state_of(chain, job_id) == JobState.SUBMITTED, what="the submission")
        chain.increase_time(chain.market.terms_of(job_id).audit_window + 1)
        chain.mine()
        auditing = make_verifier(verifier)
        auditing.step()
        record = auditing.journal.get(job_id)
        assert record.stage in (AuditStage.MISSED, AuditStage.CLOSED)
        wait_for(lambda: state_of(chain, job_id) == JobState.FINALIZED, what="the provider's finalize")
        auditing.close()
    assert chain.market.credits(verifier.address) == 0


def test_restart_mid_audit_submits_the_same_evidence(chain: Chain, market: Market, config_for, make_verifier,
                                                     requester, provider, verifier, monkeypatch) -> None:
    chain.register(verifier, Role.VERIFIER, 1_000 * WEI)
    providing = create_daemon(config_for(provider), provider)
    with running(providing):
        job_id = market.post(requester, "embed", **AUDIT_ALL)
        wait_for(lambda: state_of(chain, job_id) == JobState.SUBMITTED, what="the submission")
        chain.mine(2)
        first = make_verifier(verifier)

        def lost_connection(*args, **kwargs):
            raise StoreUnavailableError("connection lost before the verdict was sent")

        monkeypatch.setattr(first.market, "submit_verdict", lost_connection)
        first.step()
        checked = first.journal.get(job_id)
        assert checked.stage == AuditStage.CHECKED and checked.evidence_cid
        first.close()
        second = make_verifier(verifier)
        second.step()
        done = second.journal.get(job_id)
        second.close()
    assert done.stage == AuditStage.VERDICT and done.evidence_cid == checked.evidence_cid
    assert state_of(chain, job_id) == JobState.FINALIZED


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
    with block_production(chain), running(providing, auditing):
        job_id = market.post(requester, "embed", **AUDIT_ALL)
        wait_for(lambda: state_of(chain, job_id) == JobState.FINALIZED, timeout=120, what="the verdict after a retry")
    record = auditing.journal.get(job_id)
    assert failures and record.stage == AuditStage.VERDICT and record.passed
    assert any("re-execution failed" in entry.getMessage() and entry.exc_info for entry in caplog.records)
