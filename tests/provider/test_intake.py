"""What the provider reads before it claims, and in what order: on-chain refusals first, claimed work first.

Real anvil, a real store server on 127.0.0.1 that records every CID it is asked for and can hang or
answer 504 for chosen ones (``tests.provider.faulty_store``).
"""

from __future__ import annotations

import pytest

from marketplace.chain.deployment import WEI
from marketplace.protocol import ZERO_HASH, JobState, JobTerms, Params, Role, Stake
from provider.config import ProviderConfig
from provider.factory import create_daemon
from provider.journal import Stage
from provider.refusals import refusal_on_chain
from tests.conftest import Chain
from tests.provider.faulty_store import faulty_store
from tests.provider.test_daemon import running, stage_of
from tests.support.jobs import TEXTS, Market
from tests.support.waiting import wait_for


class Crash(BaseException):
    """Raised by a hook: leaves the daemon's step at once, as a ``kill -9`` would (the journal stays)."""


def test_jobs_refused_on_their_terms_cost_no_fetch(chain: Chain, market: Market, config_for, requester,
                                                    provider) -> None:
    """Each on-chain refusal is a skip with its reason, and the store hears nothing about any of them,
    though it holds every spec (a fetch would have succeeded and shown up)."""
    floors = {task: 2 for task in ("embed", "classify", "generate", "summarize")}  # WEBI per task
    config = config_for(provider, price_floor=floors)
    chain.market.request_unstake(provider, Role.PROVIDER, 9_800 * WEI)  # 200 WEI stays staked
    spec = market.upload_spec("embed", TEXTS)
    cheap_terms = {"spec_cid": spec, "num_tasks": 8, "sample_tasks": 1}
    expired = chain.post(requester, **cheap_terms, price=20 * WEI, claim_by=chain.now() + 60)
    chain.increase_time(120)
    jobs = {
        "expired": expired,
        "cheap": chain.post(requester, **cheap_terms, price=8 * WEI),  # 1 WEBI a task, under the floor of 2
        "gated": chain.post(requester, **cheap_terms, price=20 * WEI, min_provider_stake=1_000 * WEI),
        # 500 WEI locks 250 WEI of collateral, more than the 200 WEI staked
        "collateral": chain.post(requester, spec_cid=spec, num_tasks=80, sample_tasks=1, price=500 * WEI),
    }
    with faulty_store(market.store) as store:
        with running(config.model_copy(update={"store": store.url}), provider) as daemon:
            for name, job_id in jobs.items():
                wait_for(lambda job_id=job_id: stage_of(daemon, job_id) == Stage.SKIPPED, what=f"{name} skipped")
        asked = list(store.asked)
    reasons = {name: daemon.journal.get(job_id).reason for name, job_id in jobs.items()}
    assert asked == [], f"the store was asked for {asked}"
    assert reasons["expired"].startswith("the claim window closed")
    assert "under this provider's floor of 2000000000000000000" in reasons["cheap"]
    assert "asks for a provider stake of 1000000000000000000000 wei; ours is 200000000000000000000" \
        in reasons["gated"]
    assert "locks 250000000000000000000 wei of collateral, more than our whole stake" in reasons["collateral"]
    assert all(daemon.journal.get(job_id).attempts == 0 for job_id in jobs.values())
    assert chain.market.contract.events.JobClaimed().get_logs(from_block=0) == []


TERMS = JobTerms(requester="0x" + "11" * 20, price=10 * WEI, num_tasks=8, claim_by=2_000, exec_window=600,
                 sample_tasks=4, protocol_fee_bps=250, verifier_fee_bps=20_000, collateral_bps=5_000,
                 audit_window=3_600, challenge_window=3_600, audit_fee=10 * WEI, min_provider_stake=0,
                 allowlist_root=ZERO_HASH)
PARAMS = Params(min_provider_stake=100 * WEI, min_verifier_stake=1_000 * WEI, min_task_price=WEI // 20,
                unstake_cooldown=0, reveal_window=3_600, vote_window=3_600, verifier_slash_bps=5_000,
                no_show_slash_bps=100, reward_bps=1_000)


@pytest.mark.parametrize(("stake", "expected", "final"), [
    (Stake(0, 0, 0, 0, 0), "not registered as a provider", True),
    (Stake(50 * WEI, 0, 0, 0, 0), "the network asks for a provider stake of 100000000000000000000 wei", True),
    (Stake(4 * WEI, 0, 0, 0, 0), "the network asks for a provider stake", True),
    (Stake(200 * WEI, 198 * WEI, 0, 0, 0), "5000000000000000000 wei of collateral; 2000000000000000000 wei is free",
     False),
    (Stake(200 * WEI, 195 * WEI, 0, 0, 0), None, True),
])
def test_refusal_on_chain_mirrors_the_claim_checks(tmp_path, stake: Stake, expected: str | None,
                                                   final: bool) -> None:
    """What ``claimJob`` would refuse, decided from the terms and the stake: registration, the network's
    minimum stake, and collateral still locked by other jobs (a wait, not a skip: it frees up)."""
    config = ProviderConfig(rpc_url="http://127.0.0.1:9", keystore=tmp_path / "keystore.json",
                            store=str(tmp_path / "store"), state_dir=tmp_path)
    refusal = refusal_on_chain(TERMS, now=1_000, stake=stake, params=PARAMS, config=config)
    if expected is None:
        assert refusal is None
    else:
        assert refusal is not None and expected in refusal.reason and refusal.final is final


def test_a_claimed_job_never_waits_behind_unretrievable_dust(chain: Chain, market: Market, config_for,
                                                            requester, provider) -> None:
    """Dust jobs whose specs hang or 504 are posted before ours; the provider claims the paying job first
    (best paying first), crashes, and on restart computes and submits it before considering any dust,
    then keeps going through the dust within its per-pass budget without stopping."""
    config = config_for(provider, fetch_timeout_s=1.0, consider_budget_s=2.0)
    with faulty_store(market.store) as store:
        dust: dict[int, str] = {}
        for number in range(12):
            cid = str(market.store.add_bytes(f"dust spec {number}".encode()).cid)
            (store.hang if number % 2 else store.fail).add(cid)
            dust[chain.post(requester, spec_cid=cid, num_tasks=8, price=8 * WEI // 20)] = cid  # the minimum
        paying = market.post(requester, "embed")
        config = config.model_copy(update={"store": store.url})

        def crash_once_claimed(point: str, job_id: int) -> None:
            if point == "claimed":
                raise Crash(job_id)

        first = create_daemon(config, provider, hook=crash_once_claimed)
        try:
            with pytest.raises(Crash):
                first.step()
            assert stage_of(first, paying) == Stage.CLAIMED
        finally:
            first.close()
        assert store.asked_for(set(dust.values())) == [], "the paying job was considered first"

        dust_asked_at_start: list[int] = []

        def note_start(point: str, job_id: int) -> None:
            # Handed to the worker before any dust is considered (dust may be considered while it computes).
            if point == "computing" and job_id == paying:
                dust_asked_at_start.append(len(store.asked_for(set(dust.values()))))

        with running(config, provider, hook=note_start) as daemon:
            wait_for(lambda: chain.market.get_job(paying).state == JobState.SUBMITTED, timeout=60,
                     what="the claimed job submitted")
            wait_for(lambda: len(set(store.asked_for(set(dust.values())))) == len(dust), timeout=60,
                     what="every dust job considered")
            wait_for(lambda: all((r := daemon.journal.get(job_id)) is not None and r.attempts >= 1
                                 for job_id in dust), timeout=60, what="every dust job backed off")
            records = {job_id: daemon.journal.get(job_id) for job_id in dust}
    assert dust_asked_at_start == [0], "the claimed job was advanced before any unclaimed one"
    claimed = chain.market.contract.events.JobClaimed().get_logs(from_block=0, argument_filters={"jobId": paying})
    submitted = chain.market.contract.events.ResultSubmitted().get_logs(from_block=0,
                                                                        argument_filters={"jobId": paying})
    submitted_at = chain.client.w3.eth.get_block(submitted[0]["blockNumber"])["timestamp"]
    assert len(submitted) == 1 and submitted_at <= claimed[0]["args"]["deadline"]
    assert all(record.stage == Stage.SEEN for record in records.values()), "dust is retried, not ended"
    hanging = [job_id for job_id, cid in dust.items() if cid in store.hang]
    failing = [job_id for job_id, cid in dust.items() if cid in store.fail]
    assert all("timed out" in records[job_id].reason.lower() for job_id in hanging), records[hanging[0]].reason
    assert all("504" in records[job_id].reason for job_id in failing), records[failing[0]].reason
