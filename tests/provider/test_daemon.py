"""The provider daemon end to end on a real anvil and a real store server, in threads."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from eth_account.signers.local import LocalAccount
from prometheus_client import generate_latest

from marketplace.chain.devnet import dev_account, free_port
from marketplace.jobspec import JobSpec
from marketplace.results import MerkleTree, parse_output_manifest
from provider.config import ProviderConfig
from provider.daemon import ProviderDaemon
from provider.factory import create_daemon
from provider.journal import Stage
from tests.conftest import Chain
from tests.support.jobs import TEXTS, Market
from tests.support.waiting import wait_for


@contextmanager
def running(config: ProviderConfig, account: LocalAccount) -> Iterator[ProviderDaemon]:
    daemon = create_daemon(config, account)
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


def finish_audit_window(chain: Chain, job_id: int) -> None:
    chain.increase_time(chain.market.terms_of(job_id).audit_window + 1)
    chain.mine()


@pytest.mark.parametrize("kind", ["embed", "classify", "generate", "summarize"])
def test_a_job_end_to_end(chain: Chain, market: Market, config_for, requester, provider, kind) -> None:
    config = config_for(provider)
    with running(config, provider) as daemon:
        job_id = market.post(requester, kind)
        wait_for(lambda: stage_of(daemon, job_id) == Stage.SUBMITTED, what="the result on-chain")
        finish_audit_window(chain, job_id)
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
