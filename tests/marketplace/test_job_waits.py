"""``job_waits``: what a job waits for, in words, from a ``JobInfo`` and the chain facts around it (no chain)."""

from __future__ import annotations

from dataclasses import replace

from marketplace.chain.deployment import WEI
from marketplace.job_views import JobInfo
from marketplace.job_waits import JobFacts, WaitKind, claim_obstacles, job_wait, seed_usable
from marketplace.protocol import JobState, Panel, Stake, Verdict
from marketplace.provider_offers import ProviderOffer

NOW = 1_750_000_000  # 2025-06-15T15:06:40Z
PROVIDER = "0x" + "a1" * 20
VERIFIER = "0x" + "b2" * 20
STAKED = Stake(1_000 * WEI, 0, 0, 0, 0)


def info(state: JobState, **fields: object) -> JobInfo:
    base = JobInfo(7, state, "0x" + "c3" * 20, None, "bafyspec", 4 * WEI // 10, 8, None, None)
    return replace(base, **fields)  # type: ignore[arg-type]


def facts(**fields: object) -> JobFacts:
    return replace(JobFacts(now=NOW, block=100, posted_at=NOW - 600, claim_by=NOW + 3_000), **fields)  # type: ignore[arg-type]


def offer(address: str, tasks: list[str] | None = None, floor: dict[str, str] | None = None,
          stake: Stake = STAKED) -> ProviderOffer:
    document: dict[str, object] = {}
    if tasks is not None:
        document["tasks"] = tasks
    if floor is not None:
        document["price_floor"] = floor
    return ProviderOffer.from_metadata(address, stake, document)


def test_open_job_names_its_age_and_the_claim_window() -> None:
    wait = job_wait(info(JobState.OPEN), facts())
    assert wait.kind == WaitKind.CLAIM
    assert wait.line() == ("no provider has claimed it in 10 min; claim window closes at 2025-06-15T15:56:40Z "
                           "(in 50 min)")
    closed = job_wait(info(JobState.OPEN), facts(now=NOW + 3_001))
    assert closed.kind == WaitKind.CLAIM_CLOSED and "`webi job cancel 7` refunds the escrow" in closed.line()
    assert "(0 min ago)" not in closed.line() and "(1 s ago)" in closed.line()


def test_a_wait_compares_equal_whatever_the_clock_says() -> None:
    earlier, later = job_wait(info(JobState.OPEN), facts()), job_wait(info(JobState.OPEN), facts(now=NOW + 120))
    assert earlier == later and earlier.line() != later.line()


def test_price_under_every_floor_and_tasks_nobody_serves_are_named() -> None:
    # 0.4 WEBI over 8 tasks: 0.05 WEBI a task.
    floors = (offer("0x1", ["embed"], {"embed": "0.1"}), offer("0x2", ["embed", "generate"], {"embed": "0.25"}))
    under = job_wait(info(JobState.OPEN), facts(task="embed", offers=floors))
    assert under.reasons == ("its price per task 0.05 WEBI is under the floor of all 2 registered providers "
                             "(lowest 0.1)",)
    assert under.line().endswith("(in 50 min); its price per task 0.05 WEBI is under the floor of all 2 "
                                 "registered providers (lowest 0.1)")
    unserved = (offer("0x1", ["embed"]), offer("0x2", ["classify"]))
    assert claim_obstacles(info(JobState.OPEN), facts(task="generate", offers=unserved)) == (
        "no registered provider serves task generate",)
    mixed = claim_obstacles(info(JobState.OPEN), facts(task="embed", offers=(floors[0], offer("0x3", ["classify"]))))
    assert mixed == ("its price per task 0.05 WEBI is under the floor of 1 of 2 registered providers (lowest 0.1)",
                     "1 of 2 registered providers do not serve task embed")


def test_a_provider_that_published_nothing_may_claim() -> None:
    offers = (offer("0x1", ["embed"], {"embed": "1"}), offer("0x2"))
    assert claim_obstacles(info(JobState.OPEN), facts(task="embed", offers=offers)) == (
        "1 of 2 registered providers could claim it",)
    assert claim_obstacles(info(JobState.OPEN), facts(task="embed", offers=())) == ("no provider is registered",)
    assert claim_obstacles(info(JobState.OPEN), facts(task="embed")) == ()  # not looked up
    malformed = ProviderOffer.from_metadata("0x4", STAKED, {"tasks": "embed", "price_floor": {"embed": "lots"}})
    assert (malformed.tasks, malformed.price_floor_wei) == (None, {})


def test_chain_rules_come_before_published_ones() -> None:
    poor = offer("0x1", ["embed"], stake=Stake(10 * WEI, 0, 0, 0, 0))
    locked = offer("0x2", ["embed"], stake=Stake(1_000 * WEI, 999 * WEI, 0, 0, 0))
    listed = facts(task="embed", offers=(poor, locked), min_provider_stake=100 * WEI, collateral=2 * WEI)
    assert claim_obstacles(info(JobState.OPEN), listed) == (
        "1 of 2 registered providers stake less than the job's minimum of 100 WEBI",
        "1 of 2 registered providers have less free stake than the 2 WEBI collateral a claim locks")
    outside = facts(task="embed", offers=(offer("0x9"),), allowlist=frozenset({"0x1"}))
    assert claim_obstacles(info(JobState.OPEN), outside) == (
        "all 1 registered providers are not on the job's allowlist",)


def test_claimed_job_waits_for_its_provider_then_for_a_reclaim() -> None:
    claimed = info(JobState.CLAIMED, provider=PROVIDER)
    computing = job_wait(claimed, facts(due_by=NOW + 90))
    assert computing.line() == f"provider {PROVIDER} computing; result due by 2025-06-15T15:08:10Z (in 90 s)"
    late = job_wait(claimed, facts(due_by=NOW - 7_200))
    assert late.kind == WaitKind.RECLAIM and "(2 h 0 min ago)" in late.line()
    assert "`webi job reclaim 7` slashes its collateral" in late.line()


def test_submitted_job_waits_for_the_seed_block_then_the_draw_then_the_verdict() -> None:
    submitted = info(JobState.SUBMITTED, provider=PROVIDER)
    seed = job_wait(submitted, facts(block=40, seed_block=43, verifier_weight=5))
    assert seed.line() == "waiting for the seed block 43 (now at block 40)"
    nobody = job_wait(submitted, facts(block=40, seed_block=43))
    assert "no verifier is in the draw" in nobody.line()
    draw = job_wait(submitted, facts(block=45, seed_block=43, verifier_weight=5))
    assert draw.kind == WaitKind.DRAW and draw.reasons == ()
    stale = job_wait(submitted, facts(block=70, seed_block=43, verifier_weight=5))
    assert "a draw now re-arms the seed" in stale.line()
    drawn = replace(submitted, verifier=VERIFIER, deadline=NOW + 1_800)
    assert job_wait(drawn, facts()).line() == (f"waiting for a verdict from verifier {VERIFIER} by "
                                               "2025-06-15T15:36:40Z (in 30 min)")
    assert job_wait(drawn, facts(now=NOW + 1_801)).kind == WaitKind.REDRAW
    demanded = replace(drawn, reveal_by=NOW + 600)
    assert job_wait(demanded, facts()).line().startswith("provider must reveal the sampled outputs on-chain by "
                                                         "2025-06-15T15:16:40Z (in 10 min)")
    assert job_wait(demanded, facts(now=NOW + 601)).kind == WaitKind.FAIL_UNREVEALED


def test_seed_usable_mirrors_the_contract() -> None:
    assert seed_usable(35, 36) and seed_usable(35, 63)
    assert not seed_usable(35, 64)  # an epoch start (a sync phase) between them
    assert not seed_usable(33, 34)  # early in a sync phase: the rest of the phase lies after it
    assert not seed_usable(35, 35 + 257)


def test_audited_job_waits_out_the_challenge_window_then_a_finalize() -> None:
    audited = info(JobState.AUDITED, provider=PROVIDER, verifier=VERIFIER, verdict=Verdict.PASS, deadline=NOW + 3_600)
    assert job_wait(audited, facts()).line() == (f"verdict pass by verifier {VERIFIER}: challenge window open until "
                                                 "2025-06-15T16:06:40Z (in 60 min), then final")
    failed = replace(audited, verdict=Verdict.FAIL)
    assert job_wait(failed, facts()).line().endswith("then rejected")
    assert job_wait(audited, facts(now=NOW + 3_601)).kind == WaitKind.FINALIZE


def test_challenged_job_follows_its_panel() -> None:
    challenger = "0x" + "d4" * 20
    challenged = info(JobState.CHALLENGED, verifier=VERIFIER, verdict=Verdict.PASS, challenger=challenger)
    empty = Panel(challenger, 3 * WEI, 90, 0, 0, 0, (), (), ())
    assert job_wait(challenged, facts(block=88, panel=empty)).line() == (
        f"challenged by {challenger}: waiting for the panel's seed block 90 (now at block 88)")
    assert job_wait(challenged, facts(block=91, panel=empty)).kind == WaitKind.PANEL_DRAW
    seated = Panel(challenger, 3 * WEI, 0, NOW + 3_600, NOW + 7_200, 3, (VERIFIER,) * 3, (), ())
    voting = replace(challenged, panel_seats=3, panel_committed=1)
    assert job_wait(voting, facts(panel=seated)).line() == (
        f"challenged by {challenger}: panel votes due by 2025-06-15T16:06:40Z (in 60 min); 1 of 3 seats committed, "
        "0 revealed")
    revealing = replace(voting, panel_committed=3, panel_revealed=2)
    assert job_wait(revealing, facts(panel=seated)).kind == WaitKind.PANEL_REVEAL
    assert job_wait(replace(revealing, panel_revealed=3), facts(panel=seated)).kind == WaitKind.RESOLVE


def test_settled_jobs_wait_for_nothing() -> None:
    assert job_wait(info(JobState.REJECTED, verdict=Verdict.FAIL), facts()).line() == (
        "nothing: rejected (verdict fail), the price was refunded to the requester")
    assert job_wait(info(JobState.FINALIZED, verdict=Verdict.PASS), facts()).short() == (
        "nothing: final (verdict pass), the provider was paid")
    assert job_wait(info(JobState.CANCELLED), facts()).as_dict()["kind"] == "nothing"
