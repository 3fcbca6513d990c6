"""What a job waits for now, in words a person can act on: a claim, a result, a seed block, a verdict, a reveal,
the end of the challenge window, a panel's votes, or someone to make the next call.

Pure logic over a ``JobInfo`` and the chain facts around it (``JobFacts``: the chain's clock and head, the
job's windows, its panel, the providers registered and what they publish), so it is unit-testable without
a chain; ``Client.waiting_for`` gathers the facts. Times are shown in UTC and relative to the chain's clock
(the one the contracts check), never the wall clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum

from marketplace.job_views import JobInfo
from marketplace.protocol import EPOCH_BLOCKS, SEED_HORIZON, SYNC_BLOCKS, JobState, Panel, Verdict
from marketplace.provider_offers import WEI_PER_WEBI, ProviderOffer
from marketplace.units import webi


class WaitKind(StrEnum):
    """Which step a job waits for; the value is what ``--json`` shows."""

    CLAIM = "claim"
    CLAIM_CLOSED = "claim_closed"
    RESULT = "result"
    RECLAIM = "reclaim"
    SEED_BLOCK = "seed_block"
    DRAW = "draw"
    VERDICT = "verdict"
    REDRAW = "redraw"
    REVEAL = "reveal"
    FAIL_UNREVEALED = "fail_unrevealed"
    CHALLENGE_WINDOW = "challenge_window"
    FINALIZE = "finalize"
    PANEL_SEED_BLOCK = "panel_seed_block"
    PANEL_DRAW = "panel_draw"
    PANEL_COMMIT = "panel_commit"
    PANEL_REVEAL = "panel_reveal"
    RESOLVE = "resolve"
    NOTHING = "nothing"


@dataclass(frozen=True)
class JobFacts:
    """What the chain says around a job now, beyond ``JobInfo``.

    ``offers`` is None when the providers were not looked up (only an open job needs them); ``task`` is None
    when the spec could not be read.
    """

    now: int  # the latest block's timestamp: the contracts' clock
    block: int  # the latest block
    posted_at: int  # the timestamp of the block that posted the job
    claim_by: int
    due_by: int = 0  # a claimed job's result deadline
    seed_block: int = 0  # a submitted job's pending draw seed block
    verifier_weight: int = 0  # the total stake weight in the verifier draw
    panel: Panel | None = None
    task: str | None = None
    offers: tuple[ProviderOffer, ...] | None = None
    min_provider_stake: int = 0  # the larger of the job's and the network's minimum
    collateral: int = 0  # what a claim locks from the provider's free stake
    allowlist: frozenset[str] | None = None  # checksummed members, when the job has one


@dataclass(frozen=True)
class JobWait:
    """What job ``job_id`` waits for: ``kind``, from whom (``who``), until when (``until``, chain time), and why
    nobody acts where the chain or the providers say (``reasons``). Equal waits compare equal whatever the
    clock says (``now``, ``since`` and ``block`` do not count), so a watcher prints a wait once."""

    job_id: int
    state: JobState
    kind: WaitKind
    until: int | None = None
    who: str | None = None
    block: int | None = None  # the seed block waited for
    verdict: Verdict = Verdict.NONE
    reasons: tuple[str, ...] = ()
    now: int = field(default=0, compare=False)
    since: int = field(default=0, compare=False)  # when the job was posted (an open job's wait)
    head: int = field(default=0, compare=False)  # the latest block

    def line(self) -> str:
        """One line: what the job waits for, with the deadline in UTC and relative to the chain's clock."""
        return self.short() + "".join(f"; {reason}" for reason in self.reasons)

    def short(self) -> str:
        """The line without the reasons (``webi job list``)."""
        at = _at(self.until, self.now) if self.until is not None else ""
        job, who = self.job_id, self.who
        verdict = self.verdict.name.lower()
        match self.kind:
            case WaitKind.CLAIM:
                return (f"no provider has claimed it in {_minutes(self.now - self.since)} min; claim window "
                        f"closes at {at}")
            case WaitKind.CLAIM_CLOSED:
                return f"nobody claimed it: the claim window closed at {at}; `webi job cancel {job}` refunds the escrow"
            case WaitKind.RESULT:
                return f"provider {who} computing; result due by {at}"
            case WaitKind.RECLAIM:
                return (f"provider {who} missed its result deadline {at}: `webi job reclaim {job}` slashes its "
                        "collateral and opens the job again")
            case WaitKind.SEED_BLOCK:
                return f"waiting for the seed block {self.block} (now at block {self.head})"
            case WaitKind.DRAW:
                return (f"seed block {self.block} is mined (now at block {self.head}): waiting for anyone to draw the "
                        "verifier (lockSeed; the provider's daemon does)")
            case WaitKind.VERDICT:
                return f"waiting for a verdict from verifier {who} by {at}"
            case WaitKind.REDRAW:
                return (f"verifier {who} missed its verdict deadline {at}: anyone may redraw (redrawVerifier), which "
                        "slashes it")
            case WaitKind.REVEAL:
                return f"provider must reveal the sampled outputs on-chain by {at} (verifier {who} asked)"
            case WaitKind.FAIL_UNREVEALED:
                return (f"the provider missed its reveal deadline {at}: anyone may fail the job (failUnrevealed), "
                        "which refunds the price")
            case WaitKind.CHALLENGE_WINDOW:
                then = "then rejected" if self.verdict == Verdict.FAIL else "then final"
                return f"verdict {verdict} by verifier {who}: challenge window open until {at}, {then}"
            case WaitKind.FINALIZE:
                return (f"verdict {verdict}: the challenge window closed at {at}; waiting for anyone to finalize "
                        "(the provider's daemon does)")
            case WaitKind.PANEL_SEED_BLOCK:
                return (f"challenged by {who}: waiting for the panel's seed block {self.block} (now at block "
                        f"{self.head})")
            case WaitKind.PANEL_DRAW:
                return (f"challenged by {who}: the panel's seed block {self.block} is mined (now at block "
                        f"{self.head}); waiting for anyone to draw the panel (drawPanel)")
            case WaitKind.PANEL_COMMIT | WaitKind.PANEL_REVEAL | WaitKind.RESOLVE:
                return f"challenged by {who}: {self._panel_words(at)}"
            case _:
                return self._settled()

    def _panel_words(self, at: str) -> str:
        if self.kind == WaitKind.PANEL_COMMIT:
            return f"panel votes due by {at}"
        if self.kind == WaitKind.PANEL_REVEAL:
            return f"panel votes committed; reveals due by {at}"
        return "the panel has voted: waiting for anyone to resolve the challenge (resolveChallenge)"

    def _settled(self) -> str:
        if self.state == JobState.CANCELLED:
            return "nothing: cancelled, the escrow was refunded"
        if self.state == JobState.REJECTED:
            return "nothing: rejected (verdict fail), the price was refunded to the requester"
        return f"nothing: final (verdict {self.verdict.name.lower()}), the provider was paid"

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind.value, "until": self.until, "who": self.who, "block": self.block,
                "reasons": list(self.reasons), "line": self.line()}


def job_wait(info: JobInfo, facts: JobFacts) -> JobWait:
    """What ``info``'s job waits for, given the chain ``facts`` around it."""
    match info.state:
        case JobState.OPEN:
            if facts.now > facts.claim_by:
                return _made(info, facts, WaitKind.CLAIM_CLOSED, facts.claim_by)
            return _made(info, facts, WaitKind.CLAIM, facts.claim_by, reasons=claim_obstacles(info, facts))
        case JobState.CLAIMED:
            kind = WaitKind.RECLAIM if facts.now > facts.due_by else WaitKind.RESULT
            return _made(info, facts, kind, facts.due_by, info.provider)
        case JobState.SUBMITTED:
            return _audit_wait(info, facts)
        case JobState.AUDITED:
            deadline = info.deadline or 0
            kind = WaitKind.FINALIZE if facts.now > deadline else WaitKind.CHALLENGE_WINDOW
            return _made(info, facts, kind, deadline, info.verifier)
        case JobState.CHALLENGED:
            return _panel_wait(info, facts)
        case _:
            return _made(info, facts, WaitKind.NOTHING)


def _made(info: JobInfo, facts: JobFacts, kind: WaitKind, until: int | None = None, who: str | None = None, *,
          block: int | None = None, reasons: tuple[str, ...] = ()) -> JobWait:
    return JobWait(info.job_id, info.state, kind, until, who, block, info.verdict, reasons, facts.now,
                   facts.posted_at, facts.block)


def _audit_wait(info: JobInfo, facts: JobFacts) -> JobWait:
    if info.verifier is None:
        reasons: tuple[str, ...] = ()
        if not facts.verifier_weight:
            reasons = ("no verifier is in the draw: nobody can audit it until one registers and syncs",)
        if facts.block <= facts.seed_block:
            return _made(info, facts, WaitKind.SEED_BLOCK, block=facts.seed_block, reasons=reasons)
        if not seed_usable(facts.seed_block, facts.block + 1):
            reasons += ("a draw now re-arms the seed to a later block (a sync phase or 256 blocks came between)",)
        return _made(info, facts, WaitKind.DRAW, block=facts.seed_block, reasons=reasons)
    if info.reveal_by is not None:
        kind = WaitKind.FAIL_UNREVEALED if facts.now > info.reveal_by else WaitKind.REVEAL
        return _made(info, facts, kind, info.reveal_by, info.verifier)
    deadline = info.deadline or 0
    kind = WaitKind.REDRAW if facts.now > deadline else WaitKind.VERDICT
    return _made(info, facts, kind, deadline, info.verifier)


def _panel_wait(info: JobInfo, facts: JobFacts) -> JobWait:
    panel, who = facts.panel, info.challenger
    if panel is None or panel.size == 0:
        seed = panel.seed_block if panel is not None else 0
        kind = WaitKind.PANEL_SEED_BLOCK if facts.block <= seed else WaitKind.PANEL_DRAW
        return _made(info, facts, kind, who=who, block=seed)
    seats = f"{info.panel_committed} of {panel.size} seats committed, {info.panel_revealed} revealed"
    all_committed, all_revealed = info.panel_committed >= panel.size, info.panel_revealed >= panel.size
    if facts.now <= panel.commit_by and not all_committed:
        return _made(info, facts, WaitKind.PANEL_COMMIT, panel.commit_by, who, reasons=(seats,))
    if facts.now <= panel.reveal_by and not all_revealed:
        return _made(info, facts, WaitKind.PANEL_REVEAL, panel.reveal_by, who, reasons=(seats,))
    return _made(info, facts, WaitKind.RESOLVE, panel.reveal_by, who, reasons=(seats,))


def seed_usable(seed_block: int, at_block: int) -> bool:
    """Whether a draw in block ``at_block`` can use ``seed_block``'s hash (``MarketBase._seedHash``): within the
    horizon and with no sync phase between them; otherwise the draw re-arms."""
    if at_block - seed_block > SEED_HORIZON:
        return False
    return at_block // EPOCH_BLOCKS == seed_block // EPOCH_BLOCKS and seed_block % EPOCH_BLOCKS + 1 >= SYNC_BLOCKS


def claim_obstacles(info: JobInfo, facts: JobFacts) -> tuple[str, ...]:
    """Why no registered provider takes the job, from the chain (stake, allowlist) and from what providers
    published (tasks, price floors); a provider that published nothing may take it. Empty when the providers
    were not looked up."""
    if facts.offers is None:
        return ()
    if not facts.offers:
        return ("no provider is registered",)
    per_task = info.price // max(info.num_tasks, 1)
    refusals: dict[str, list[ProviderOffer]] = {}
    eligible = 0
    for offer in facts.offers:
        why = _refusal(offer, per_task, facts)
        if why is None:
            eligible += 1
        else:
            refusals.setdefault(why, []).append(offer)
    total = len(facts.offers)
    if eligible:
        return (f"{eligible} of {total} registered providers could claim it",)
    return tuple(_explain(why, offers, total, per_task, facts) for why, offers in refusals.items())


def _refusal(offer: ProviderOffer, per_task: int, facts: JobFacts) -> str | None:
    if facts.allowlist is not None and offer.address not in facts.allowlist:
        return "allowlist"
    if offer.stake.stake < facts.min_provider_stake:
        return "stake"
    if offer.stake.free < facts.collateral:
        return "collateral"
    if facts.task is not None and offer.serves(facts.task) is False:
        return "task"
    floor = offer.price_floor_wei.get(facts.task) if facts.task is not None else None
    if floor is not None and per_task < floor:
        return "floor"
    return None


def _explain(why: str, offers: list[ProviderOffer], total: int, per_task: int, facts: JobFacts) -> str:
    count = len(offers)
    every = f"all {total} registered providers" if count == total else f"{count} of {total} registered providers"
    if why == "task":
        if count == total:
            return f"no registered provider serves task {facts.task}"
        return f"{every} do not serve task {facts.task}"
    if why == "floor":
        lowest = min(offer.price_floor_wei[str(facts.task)] for offer in offers)
        return (f"its price per task {_webi_per_task(per_task)} WEBI is under the floor of {every} "
                f"(lowest {_webi_per_task(lowest)})")
    if why == "allowlist":
        return f"{every} are not on the job's allowlist"
    if why == "stake":
        return f"{every} stake less than the job's minimum of {webi(facts.min_provider_stake)} WEBI"
    return f"{every} have less free stake than the {webi(facts.collateral)} WEBI collateral a claim locks"


def _webi_per_task(wei: int) -> str:
    """WEBI with every significant digit (per-task prices are small; ``units.webi`` rounds for display)."""
    return format((Decimal(wei) / WEI_PER_WEBI).normalize(), "f")


def _at(timestamp: int, now: int) -> str:
    """``2025-01-02T03:04:05Z (in 12 min)``: UTC, and relative to the chain's clock."""
    when = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    delta = timestamp - now
    span = _span(abs(delta))
    return f"{when} ({'now' if delta == 0 else f'in {span}' if delta > 0 else f'{span} ago'})"


def _span(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    minutes = (seconds + 30) // 60  # to the nearest minute: a window of 3,599 s reads "60 min"
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def _minutes(seconds: int) -> int:
    return max(seconds, 0) // 60


__all__ = ["JobFacts", "JobWait", "WaitKind", "claim_obstacles", "job_wait", "seed_usable"]
