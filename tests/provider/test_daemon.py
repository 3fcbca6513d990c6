"""The provider daemon end to end on a real anvil and a real store server, in threads."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from prometheus_client import generate_latest

from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import dev_account, free_port, revert, snapshot
from marketplace.jobspec import JobSpec
from marketplace.protocol import Allowlist, JobState, Role, Verdict, allowlist_leaf, secret_hash
from marketplace.results import MerkleTree, parse_output_manifest
from provider.config import ProviderConfig
from provider.daemon import ProviderDaemon
from provider.factory import create_daemon
from provider.journal import Stage
from tests.conftest import Chain
from tests.support.epochs import into_sync_phase, outside_sync_phase, wait_drawn
from tests.support.jobs import TEXTS, Market, audit_by_hand
from tests.support.waiting import wait_for


@contextmanager
def running(config: ProviderConfig, account: LocalAccount, **kwargs: Any) -> Iterator[ProviderDaemon]:
    """The daemon serving on a thread; stopped, joined and closed after (other provider tests use it too)."""
    daemon = create_daemon(config, account, **kwargs)
    thread = threading.Thread(target=daemon.run, name=f"provider-{account.address[:8]}")
    thread.start()
    try:
        yield daemon
    finally:
        daemon.stop()
        thread.join(timeout=60)
        assert not thread.is_alive(), "the daemon did not stop"
        daemon.close()


def stage_of(daemon: ProviderDaemon, job_id: int) -> Stage | None:
    record = daemon.journal.get(job_id)
    return None if record is None else record.stage


@pytest.mark.parametrize("kind", ["embed", "classify", "generate", "summarize"])
def test_a_job_end_to_end(chain: Chain, market: Market, config_for, requester, provider, verifier, kind) -> None:
    """Claimed, run, submitted; the provider draws the verifier, and settles the job once the pass is final."""
    chain.register(verifier, Role.VERIFIER)
    config = config_for(provider)
    with running(config, provider) as daemon:
        job_id = market.post(requester, kind)
        wait_for(lambda: stage_of(daemon, job_id) == Stage.SUBMITTED, what="the result on-chain")
        audit_by_hand(chain, verifier, job_id)
        wait_for(lambda: stage_of(daemon, job_id) == Stage.FINALIZED, what="finalization")
        assert daemon.metrics is not None
        metrics = wait_for(lambda: (text := generate_latest(daemon.metrics.registry).decode())
                           and 'webi_provider_jobs{stage="finalized"} 1.0' in text and text, what="metrics")
    record = daemon.journal.get(job_id)
    assert record is not None
    assert int(record.earned_wei) == chain.market.credits(provider.address) > 0
    submitted = chain.market.contract.events.ResultSubmitted().get_logs(from_block=0,
                                                                        argument_filters={"jobId": job_id})
    assert len(submitted) == 1
    outputs = parse_output_manifest(market.read(submitted[0]["args"]["outputCid"]), len(TEXTS))
    assert MerkleTree(outputs).root == submitted[0]["args"]["resultRoot"]
    assert f"webi_provider_tasks_total {float(len(TEXTS))}" in metrics
    assert 'webi_provider_jobs{stage="finalized"} 1.0' in metrics
    settled = chain.market.contract.events.JobSettled().get_logs(from_block=0, argument_filters={"jobId": job_id})
    assert [chain.client.w3.eth.get_transaction(entry["transactionHash"])["from"] for entry in settled] == [
        provider.address], "the provider finalizes its own job"


def test_a_failed_audit_ends_rejected(chain: Chain, market: Market, config_for, requester, provider,
                                      verifier) -> None:
    chain.register(verifier, Role.VERIFIER)
    with running(config_for(provider), provider) as daemon:
        job_id = market.post(requester, "embed")
        audit_by_hand(chain, verifier, job_id, Verdict.FAIL)
        wait_for(lambda: stage_of(daemon, job_id) == Stage.REJECTED, what="the rejection")
    assert chain.market.get_job(job_id).state == JobState.REJECTED
    assert chain.market.credits(provider.address) == 0
    collateral = chain.market.terms_of(job_id).collateral
    assert chain.market.provider_stake(provider.address).stake == 10_000 * WEI - collateral


def test_a_verifier_that_misses_its_deadline_is_redrawn(chain: Chain, market: Market, config_for, requester,
                                                         provider, verifier) -> None:
    """The provider wants to be paid: it draws the verifier, and when that one lets its deadline pass,
    it penalizes the no-show and draws again."""
    chain.register(verifier, Role.VERIFIER)
    stake = chain.market.verifier_stake(verifier.address).stake
    with running(config_for(provider), provider):
        job_id = market.post(requester, "classify")
        wait_for(lambda: chain.market.get_job(job_id).state == JobState.SUBMITTED, what="the result")
        wait_drawn(chain, job_id)  # the first draw
        chain.increase_time(chain.market.terms_of(job_id).audit_window + 1)
        wait_for(lambda: not chain.market.audit_of(job_id).drawn, what="the redraw")
        audit = wait_drawn(chain, job_id)  # the second draw, past the new seed block
    assert audit.draws == 2 and audit.verifier == verifier.address
    missed = chain.market.contract.events.VerifierMissed().get_logs(from_block=0, argument_filters={"jobId": job_id})
    assert [entry["args"]["verifier"] for entry in missed] == [verifier.address]
    params = chain.market.params()
    slash = stake * params.no_show_slash_bps // 10_000
    assert chain.market.verifier_stake(verifier.address).stake == stake - slash
    assert chain.market.credits(provider.address) == slash * params.reward_bps // 10_000  # the caller's reward


def test_an_operator_staked_as_a_verifier_too_keeps_its_draw_weight_in_sync(chain: Chain, config_for,
                                                                            provider) -> None:
    """Staked outside a sync phase, the operator's verifier stake counts only once someone syncs it: its
    provider daemon does, in the next sync phase."""
    config = config_for(provider)  # approves the market too
    outside_sync_phase(chain, 2)
    chain.market.register(provider, Role.VERIFIER, 1_000 * WEI)
    chain.market.commit_secret(provider, secret_hash(chain.secret(provider, 0)))
    assert chain.market.verifier_weight(provider.address) == 0
    daemon = create_daemon(config, provider)
    try:
        daemon.step()
        assert chain.market.verifier_weight(provider.address) == 0, "no sync outside a sync phase"
        into_sync_phase(chain)
        daemon.step()
        assert chain.market.verifier_weight(provider.address) == 1_000 * WEI
    finally:
        daemon.close()


def test_skips_what_it_should_not_run(chain: Chain, market: Market, config_for, requester, provider,
                                      tmp_path) -> None:
    config = config_for(provider, price_floor={"embed": 1_000_000}, tasks=["embed", "classify"])
    pickled = tmp_path / "pickled"
    import shutil

    import torch

    shutil.copytree(market.bundles["classify"], pickled)
    torch.save({"w": torch.zeros(1)}, pickled / "pytorch_model.bin")
    market.bundles["pickled"] = pickled
    with running(config, provider) as daemon:
        cheap = market.post(requester, "embed")
        unserved = market.post(requester, "generate")
        dangerous = market.post(requester, spec_cid=market.upload_spec("pickled", TEXTS, task="classify"))
        short = JobSpec.model_validate_json(market.read(market.upload_spec("classify", TEXTS)))
        lying = market.store.add_bytes(short.model_copy(update={"num_tasks": len(TEXTS) + 1}).to_bytes()).cid
        miscounted = market.post(requester, spec_cid=str(lying), texts=[*TEXTS, "one more"])
        for job_id in (cheap, unserved, dangerous, miscounted):
            wait_for(lambda job_id=job_id: stage_of(daemon, job_id) == Stage.SKIPPED, what=f"job {job_id} skipped")
    reasons = {job_id: daemon.journal.get(job_id).reason for job_id in (cheap, unserved, dangerous, miscounted)}
    assert "under this provider's floor" in reasons[cheap]
    assert "generate is not served here" in reasons[unserved]
    assert "pickle checkpoint" in reasons[dangerous]
    assert "has 8 inputs but the job has 9 tasks" in reasons[miscounted]
    assert chain.market.contract.events.JobClaimed().get_logs(from_block=0) == []


def test_gated_jobs_are_refused_before_anything_is_fetched(chain: Chain, market: Market, config_for, requester,
                                                           provider) -> None:
    """A job the provider may not claim (the requester asks for more stake than it has) is skipped on its
    on-chain terms: the store, unreachable here, is never asked."""
    config = config_for(provider).model_copy(update={"store": f"http://127.0.0.1:{free_port()}"})
    with running(config, provider) as daemon:
        job_id = market.post(requester, "embed", min_provider_stake=20_000 * WEI)
        wait_for(lambda: stage_of(daemon, job_id) == Stage.SKIPPED, what="the skip")
    record = daemon.journal.get(job_id)
    assert record is not None and record.attempts == 0 and "provider stake" in record.reason


def test_allowlisted_jobs_are_claimed_with_a_proof(chain: Chain, market: Market, config_for, requester,
                                                   provider) -> None:
    others = [dev_account(5).address, dev_account(6).address]
    listed = (provider.address, *others)
    with running(config_for(provider), provider) as daemon:
        among_three = market.post(requester, spec_cid=market.upload_spec("embed", TEXTS, allowlist=listed),
                                  allowlist_root=Allowlist(listed).root)
        alone = market.post(requester, "embed", allowlist_root=allowlist_leaf(provider.address))  # needs no list
        excluded = market.post(requester, spec_cid=market.upload_spec("embed", TEXTS, allowlist=tuple(others)),
                               allowlist_root=Allowlist(tuple(others)).root)
        unnamed = market.post(requester, "embed", allowlist_root=Allowlist(tuple(others)).root)
        for job_id in (among_three, alone):
            wait_for(lambda job_id=job_id: stage_of(daemon, job_id) == Stage.SUBMITTED, what=f"job {job_id}")
        for job_id in (excluded, unnamed):
            wait_for(lambda job_id=job_id: stage_of(daemon, job_id) == Stage.SKIPPED, what=f"job {job_id} skipped")
    assert "not in the job's allowlist" in daemon.journal.get(excluded).reason
    assert "does not name the members" in daemon.journal.get(unnamed).reason
    claims = chain.market.contract.events.JobClaimed().get_logs(from_block=0)
    assert sorted(entry["args"]["jobId"] for entry in claims) == [among_three, alone]


def test_two_providers_race_one_wins_the_other_moves_on(chain: Chain, market: Market, config_for,
                                                         requester) -> None:
    first, second = dev_account(5), dev_account(6)
    with running(config_for(first, "first"), first) as one, running(config_for(second, "second"), second) as two:
        job_id = market.post(requester, "classify")
        wait_for(lambda: {stage_of(one, job_id), stage_of(two, job_id)} >= {Stage.LOST}, what="a lost race")
        winner = one if stage_of(one, job_id) != Stage.LOST else two
        wait_for(lambda: stage_of(winner, job_id) == Stage.SUBMITTED, what="the winner's result")
        later = market.post(requester, "classify")
        wait_for(lambda: any(stage_of(daemon, later) == Stage.SUBMITTED for daemon in (one, two)),
                 what="the next job done by either")
    claims = chain.market.contract.events.JobClaimed().get_logs(from_block=0, argument_filters={"jobId": job_id})
    assert len(claims) == 1 and claims[0]["args"]["provider"] == winner.address


def test_an_unreachable_store_is_retried_not_fatal(chain: Chain, market: Market, config_for, requester,
                                                   provider) -> None:
    config = config_for(provider).model_copy(update={"store": f"http://127.0.0.1:{free_port()}"})
    with running(config, provider) as daemon:
        job_id = market.post(requester, "embed")
        record = wait_for(lambda: (r := daemon.journal.get(job_id)) is not None and r.attempts >= 2 and r,
                          what="two failed attempts")
        assert record.stage == Stage.SEEN
        assert "failed" in record.reason
        assert not daemon.stopping.is_set()


def test_a_model_that_fails_on_its_inputs_fails_that_job_only(chain: Chain, market: Market, config_for, requester,
                                                                provider, tmp_path) -> None:
    """A bundle whose vocabulary is larger than its embedding table passes every static check and breaks in
    the forward pass: the job fails, and the daemon goes on to the next one."""
    import json
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(market.bundles["embed"], broken)
    config_file = broken / "config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), "vocab_size": 8}))
    from safetensors.torch import load_file, save_file

    weights = load_file(broken / "model.safetensors")
    name = next(key for key in weights if key.endswith("word_embeddings.weight"))
    weights[name] = weights[name][:8].clone()
    save_file(weights, broken / "model.safetensors")
    spec_cid = market.upload_spec("embed", TEXTS)
    bad_spec = JobSpec.model_validate_json(market.read(spec_cid)).model_copy(
        update={"model": str(market.store.add_path(broken, recursive=True).cid)})
    bad = market.post(requester, spec_cid=str(market.store.add_bytes(bad_spec.to_bytes()).cid))
    with running(config_for(provider), provider) as daemon:
        wait_for(lambda: stage_of(daemon, bad) == Stage.FAILED, what="the broken job to fail")
        good = market.post(requester, "embed")
        wait_for(lambda: stage_of(daemon, good) == Stage.SUBMITTED, what="the next job to go through")
    record = daemon.journal.get(bad)
    assert record is not None and record.reason.startswith("inference failed: IndexError")


def test_a_job_whose_claim_and_result_a_reorg_replaced_is_claimed_and_submitted_again(
        chain: Chain, market: Market, config_for, requester, provider) -> None:
    # Found by scripts/chaos.py: after anvil restarted from an older state, a job the daemon had submitted was
    # open again on the chain, and the daemon followed a submission that no longer existed (or dropped the job as
    # "lost"): nobody claimed it again, and it stayed open for good.
    config = config_for(provider)
    job_id = market.post(requester, "embed")
    fork = snapshot(chain.client)
    with running(config, provider) as daemon:
        wait_for(lambda: stage_of(daemon, job_id) == Stage.SUBMITTED, what="the result on-chain")
    revert(chain.client, fork)  # the claim's and the submission's blocks are replaced
    assert chain.market.get_job(job_id).state == JobState.OPEN
    with running(config, provider) as daemon:
        wait_for(lambda: chain.market.get_job(job_id).state == JobState.SUBMITTED, what="the job submitted again")
        wait_for(lambda: stage_of(daemon, job_id) == Stage.SUBMITTED, what="the journal to follow it")
    assert chain.market.get_job(job_id).provider == provider.address
