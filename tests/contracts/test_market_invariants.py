"""Stateful property test: random sequences of every action of the protocol by several actors.

After every step, the market's token balance equals, to the wei, all stakes and unbonding stakes
plus all credits plus accrued protocol fees plus the escrow (price and audit fee) of live jobs plus
the bonds of challenged jobs plus everything burned; every stake, duty, credit, fee, burn, job state
and draw weight equals an independent Python model's; no job pays its provider twice; and every call
succeeds exactly when the model says the protocol allows it (calls within a few seconds of a
deadline may go either way).

The model keeps its own sortition tree (weights change only in sync phases, leaves in the
contract's order), so it predicts every draw: from the seed block's hash, the verifier lockSeed
draws and the seats drawPanel fills, or that the seed is re-armed, or that nobody is eligible.

Every example starts from the same chain: actors staked and a dozen jobs in every state up to a
panel with every vote committed, so that short runs reach verdicts, challenges, votes and
resolutions. The default run makes at least 2,000 steps; HYPOTHESIS_PROFILE=long at least 10,000.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
from eth_account.signers.local import LocalAccount
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import Devnet, increase_time, mine, revert, snapshot
from marketplace.chain.governance import Governance
from marketplace.chain.market import JobMarket
from marketplace.chain.token import WebiToken
from marketplace.errors import ContractError
from marketplace.protocol import (
    BPS,
    EPOCH_BLOCKS,
    LIVE_STATES,
    PANEL_SIZE,
    SYNC_BLOCKS,
    ZERO_ADDRESS,
    ZERO_HASH,
    CreditKind,
    JobRequest,
    JobState,
    JobTerms,
    Params,
    Role,
    Verdict,
    audit_secret,
    draw_seed,
    in_sync_phase,
    next_sync_block,
    sample_seed,
    sampled_task_indices,
    secret_hash,
)
from marketplace.results import MerkleTree
from tests.conftest import MAX_UINT, OUTPUT_CID
from tests.contracts.support import (
    DevClient,
    SortitionModel,
    dev,
    next_seed_block,
    outputs_for,
    panel_seat_seeds,
    usable_seed,
)

pytestmark = pytest.mark.fuzz

LONG = os.environ.get("HYPOTHESIS_PROFILE") == "long"
EXAMPLES, STEPS_PER_EXAMPLE, MIN_STEPS = (220, 60, 10_000) if LONG else (48, 50, 2_000)
SLACK = 5  # seconds around a deadline where either outcome is accepted

REQUESTERS = [dev(10), dev(11)]
PROVIDERS = [dev(12), dev(13)]
VERIFIERS = [dev(i) for i in range(14, 20)]
ACTORS = REQUESTERS + PROVIDERS + VERIFIERS
VERIFIER_STAKES = [amount * WEI for amount in (1_000, 1_500, 2_000, 2_500, 3_000, 4_000)]
VERDICTS = [Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE]
EXEC_WINDOW = 2 * 3_600  # a claim outlives short time steps, not long ones
# How often each action is drawn; "progress" moves some live job along its path.
WEIGHTS = {
    "progress": 14, "post": 3, "cancel": 1, "claim": 2, "reclaim": 1, "submit": 2, "lock_seed": 2, "verdict": 2,
    "demand_reveal": 1, "reveal_outputs": 1, "fail_unrevealed": 1, "redraw": 1, "finalize": 2, "challenge": 2,
    "draw_panel": 1, "vote": 3, "resolve": 2, "withdraw": 2, "withdraw_protocol_fees": 1, "join_as_verifier": 1,
    "add_stake": 1, "request_unstake": 2, "withdraw_stake": 1, "exit": 1, "sync": 2, "advance_time": 5, "mine": 3,
}
SCHEDULE = [name for name, weight in WEIGHTS.items() for _ in range(weight)]


class Counter:
    """Steps run, and how often each action went through or was refused, over the whole test."""

    steps = 0
    rules: ClassVar[collections.Counter[str]] = collections.Counter()
    done: ClassVar[collections.Counter[str]] = collections.Counter()
    refused: ClassVar[collections.Counter[str]] = collections.Counter()

    @classmethod
    def step(cls, rule: str) -> None:
        cls.steps += 1
        cls.rules[rule] += 1


# ───────────────────────────────────────────── the model


@dataclass
class ModelStake:
    stake: int = 0
    locked: int = 0
    unbonding: int = 0
    unlock_at: int = 0
    duties: int = 0


@dataclass
class ModelPanel:
    challenger: str
    bond: int
    seed_block: int
    seats: list[str] = field(default_factory=list)  # a verifier drawn twice holds two
    commit_by: int = 0
    reveal_by: int = 0
    planned: dict[str, Verdict] = field(default_factory=dict)  # committed votes, by member
    revealed: dict[str, Verdict] = field(default_factory=dict)

    @property
    def drawn(self) -> bool:
        return bool(self.seats)

    @property
    def members(self) -> list[str]:
        return list(dict.fromkeys(self.seats))


@dataclass
class ModelJob:
    terms: JobTerms
    state: JobState = JobState.OPEN
    provider: str = ""
    claim_deadline: int = 0
    tree: MerkleTree | None = None
    seed_block: int = 0
    draws: int = 0
    verifier: str = ""
    seed: bytes = ZERO_HASH
    commitment: bytes = ZERO_HASH  # the verifier's commitment the draw stored
    sample_seed: bytes = ZERO_HASH  # once the secret is open
    deadline: int = 0
    verdict: Verdict = Verdict.NONE
    reveal_by: int = 0
    panel: ModelPanel | None = None
    paid: int = 0


@dataclass
class Model:
    """What the market must hold, computed from the rules of the protocol alone."""

    params: Params
    jobs: dict[int, ModelJob] = field(default_factory=dict)
    credits: dict[str, int] = field(default_factory=dict)
    protocol_fees: int = 0
    burned: int = 0
    stakes: dict[tuple[str, Role], ModelStake] = field(default_factory=dict)
    commitments: dict[str, bytes] = field(default_factory=dict)  # each verifier's current one
    secrets: dict[bytes, bytes] = field(default_factory=dict)  # commitment -> secret
    next_secret: dict[str, int] = field(default_factory=dict)
    tree: SortitionModel = field(default_factory=SortitionModel)  # the draw's weights, as applied

    def stake(self, address: str, role: Role) -> ModelStake:
        return self.stakes.setdefault((address, role), ModelStake())

    def credit(self, address: str, amount: int) -> None:
        self.credits[address] = self.credits.get(address, 0) + amount

    def touch(self, address: str, block: int) -> None:
        """``_syncWeight``: in a sync phase, the tree takes the verifier's stake (with a secret
        commitment and at least the minimum stake; else it leaves)."""
        if not in_sync_phase(block):
            return
        stake = self.stake(address, Role.VERIFIER).stake
        committed = self.commitments.get(address, ZERO_HASH) != ZERO_HASH
        self.tree.set(address, stake if committed and stake >= self.params.min_verifier_stake else 0)

    def anyone_outside(self, excluded: list[str]) -> bool:
        return any(address not in excluded for address, _ in self.tree.leaves)

    def reward(self, prover: str, amount: int) -> None:
        reward = amount * self.params.reward_bps // BPS if prover else 0
        self.credit(prover, reward)
        self.burned += amount - reward

    def slash_verifier(self, address: str, bps: int, block: int) -> int:
        s = self.stake(address, Role.VERIFIER)
        amount = (s.stake + s.unbonding) * bps // BPS
        from_stake = min(amount, s.stake)
        s.stake -= from_stake
        s.unbonding -= amount - from_stake
        self.touch(address, block)
        return amount

    def settle(self, job: ModelJob, verdict: Verdict, prover: str, verifier_paid: bool) -> None:
        terms = job.terms
        provider = self.stake(job.provider, Role.PROVIDER)
        provider.locked -= terms.collateral
        self.stake(job.verifier, Role.VERIFIER).duties -= 1
        job.verdict = verdict
        if verdict is Verdict.FAIL:
            provider.stake -= terms.collateral
            job.state = JobState.REJECTED
            self.credit(terms.requester, terms.price)
            self.reward(prover, terms.collateral)
        else:
            job.state = JobState.FINALIZED
            job.paid += 1
            assert job.paid == 1, "a job paid its provider twice"
            split = terms.split()
            self.credit(job.provider, split.provider)
            self.protocol_fees += split.protocol
        self.credit(job.verifier if verifier_paid else terms.requester, terms.audit_fee)

    def commit_next(self, verifier: LocalAccount, chain_id: int, market: str) -> bytes:
        """A fresh secret commitment for ``verifier``, remembered with its secret."""
        index = self.next_secret.get(verifier.address, 0)
        self.next_secret[verifier.address] = index + 1
        secret = audit_secret(bytes(verifier.key), chain_id, market, index)
        commitment = secret_hash(secret)
        self.secrets[commitment] = secret
        return commitment

    def open_secret(self, job: ModelJob, verifier: str, next_hash: bytes) -> None:
        """The verifier revealed the secret the draw stored: the next commitment replaces it if current."""
        if self.commitments.get(verifier) == job.commitment:
            self.commitments[verifier] = next_hash
        job.sample_seed = sample_seed(job.seed, self.secrets[job.commitment])

    def total(self) -> int:
        """Every wei the market must hold."""
        escrow = sum(j.terms.escrow for j in self.jobs.values() if j.state in LIVE_STATES)
        bonds = sum(j.panel.bond for j in self.jobs.values() if j.state is JobState.CHALLENGED and j.panel)
        stakes = sum(s.stake + s.unbonding for s in self.stakes.values())
        return stakes + sum(self.credits.values()) + self.protocol_fees + escrow + bonds + self.burned


# ───────────────────────────────────────────── the machine's view of the chain


@dataclass
class Start:
    """The chain state every example starts from, and the model of it."""

    devnet: Devnet
    client: DevClient
    market: JobMarket
    token: WebiToken
    model: Model


def dev_of(address: str) -> LocalAccount:
    return next(a for a in ACTORS if a.address == address)


def _role(account: LocalAccount) -> Role:
    """The machine's stakers hold one role each."""
    return Role.PROVIDER if account in PROVIDERS else Role.VERIFIER


def _salt(job_id: int, member: str) -> bytes:
    return job_id.to_bytes(16, "big") + bytes.fromhex(member[2:34])


class Actions:
    """Every action of the protocol on the chain and on the model, with what the model expects.

    Each ``_x`` method sends one call through ``_try`` and, when it goes through, applies its
    effects to the model; ``expected`` False means the model says it must revert.
    """

    client: DevClient
    market: JobMarket
    model: Model
    receipt: Any = None

    def _try(self, name: str, expected: bool | None, action: Callable[[], object],
             allowed: tuple[str, ...] = ()) -> bool:
        """Runs action ``name``; ``expected`` None means the outcome is not for the model to call (a
        deadline too close), in which case a refusal must be one of ``allowed``."""
        try:
            self.receipt = action()
        except ContractError as error:
            assert expected is not True, f"{name} refused but allowed: {error}"
            if expected is None and allowed:
                assert error.name in allowed, f"{name}: unexpected refusal: {error}"
            Counter.refused[name] += 1
            return False
        assert expected is not False, f"{name} allowed but the model says it must revert"
        Counter.done[name] += 1
        return True

    def _block(self) -> int:
        """The block of the last transaction that went through."""
        return int(self.receipt["blockNumber"])

    def _next_block(self) -> int:
        """The block the next transaction lands in."""
        return int(self.client.w3.eth.block_number) + 1

    def _now(self) -> int:
        return self.client.timestamp()

    @staticmethod
    def _before(now: int, limit: int) -> bool | None:
        """now <= limit, or None when too close to call."""
        if abs(now - limit) <= SLACK:
            return None
        return now < limit

    @staticmethod
    def _after(now: int, limit: int) -> bool | None:
        before = Actions._before(now, limit)
        return None if before is None else not before

    def _hash(self, block: int) -> bytes:
        return bytes(self.client.w3.eth.get_block(block)["hash"])

    def _terms(self, job: ModelJob | None) -> JobTerms:
        return job.terms if job else next(iter(self.model.jobs.values())).terms

    def _job(self, job_id: int, *states: JobState) -> ModelJob | None:
        job = self.model.jobs.get(job_id)
        return job if job is not None and job.state in states else None

    # ───────────────────────────────────── jobs

    def _post(self, who: LocalAccount, tasks: int, sample: int, price: int) -> None:
        request = JobRequest("spec", tasks, price, self._now() + 30 * 86_400, EXEC_WINDOW, sample)
        ok = price >= tasks * self.model.params.min_task_price
        posted: list[int] = []
        if self._try("post", ok, lambda: posted.append(self.market.post_job(who, request))):
            self.model.jobs[posted[0]] = ModelJob(self.market.terms_of(posted[0]))

    def _cancel(self, job_id: int, who: LocalAccount) -> None:
        job = self._job(job_id, JobState.OPEN)
        ok = job is not None and who.address == job.terms.requester
        if self._try("cancel", ok, lambda: self.market.cancel_job(who, job_id, self._terms(job))):
            assert job is not None
            job.state = JobState.CANCELLED
            self.model.credit(job.terms.requester, job.terms.escrow)

    def _claim(self, job_id: int, who: LocalAccount) -> None:
        job = self._job(job_id, JobState.OPEN)
        stake = self.model.stake(who.address, Role.PROVIDER)
        ok: bool | None = False
        if job is not None:
            minimum = max(self.model.params.min_provider_stake, job.terms.min_provider_stake)
            if stake.stake >= minimum and stake.stake - stake.locked >= job.terms.collateral:
                ok = self._before(self._now(), job.terms.claim_by)
        if self._try("claim", ok, lambda: self.market.claim_job(who, job_id, self._terms(job))):
            assert job is not None
            job.state, job.provider = JobState.CLAIMED, who.address
            job.claim_deadline = self.market.get_job(job_id).stamp
            stake.locked += job.terms.collateral

    def _reclaim(self, job_id: int, who: LocalAccount) -> None:
        job = self._job(job_id, JobState.CLAIMED)
        ok = self._after(self._now(), job.claim_deadline) if job else False
        if self._try("reclaim", ok, lambda: self.market.reclaim_expired(who, job_id, self._terms(job))):
            assert job is not None
            stake = self.model.stake(job.provider, Role.PROVIDER)
            stake.locked -= job.terms.collateral
            stake.stake -= job.terms.collateral
            self.model.reward(who.address, job.terms.collateral)
            job.state, job.provider = JobState.OPEN, ""

    def _submit(self, job_id: int, who: LocalAccount) -> None:
        job = self._job(job_id, JobState.CLAIMED)
        ok = self._before(self._now(), job.claim_deadline) if job and who.address == job.provider else False
        tree = MerkleTree(outputs_for(job_id, job.terms.num_tasks)) if job else None
        root = tree.root if tree else b"\x07" * 32
        if self._try("submit", ok, lambda: self.market.submit_result(who, job_id, OUTPUT_CID, root)):
            assert job is not None
            job.state, job.tree, job.seed_block = JobState.SUBMITTED, tree, next_seed_block(self._block())

    # ───────────────────────────────────── audits

    def _lock_seed(self, job_id: int, who: LocalAccount) -> None:
        job = self._job(job_id, JobState.SUBMITTED)
        ok: bool | None = False
        predicted = ZERO_ADDRESS
        seed = ZERO_HASH
        block = self._next_block()
        if job is not None and not job.verifier and block > job.seed_block:
            if usable_seed(job.seed_block, block):
                seed = draw_seed(self._hash(job.seed_block), job_id, job.draws)
                predicted = self.model.tree.draw(seed, [job.terms.requester, job.provider])
                ok = predicted != ZERO_ADDRESS  # else NoEligibleVerifier: the job waits
            else:
                ok = True  # re-armed
        if self._try("lock_seed", ok, lambda: self.market.lock_seed(who, job_id, self._terms(job))):
            assert job is not None
            audit = self.market.audit_of(job_id)
            if predicted == ZERO_ADDRESS:
                assert not audit.drawn
                job.seed_block = next_seed_block(self._block())
                return
            commitment = self.model.commitments[predicted]
            assert (audit.verifier, audit.seed, audit.secret, audit.draws) == (
                predicted, seed, commitment, (job.draws + 1) % 256), "the draw is not the model's"
            job.verifier, job.seed, job.commitment, job.deadline = predicted, seed, commitment, audit.deadline
            job.draws, job.reveal_by = audit.draws, 0
            self.model.stake(predicted, Role.VERIFIER).duties += 1

    def _verdict(self, job_id: int, who: LocalAccount, verdict: Verdict) -> None:
        job = self._job(job_id, JobState.SUBMITTED)
        drawn = job is not None and bool(job.verifier)
        ok: bool | None = False
        if job is not None and drawn and who.address == job.verifier and verdict is not Verdict.NONE:
            ok = self._before(self._now(), job.deadline)
        opening = job is not None and drawn and job.reveal_by == 0  # a reveal demand opened it already
        secret = self.model.secrets[job.commitment] if opening and job else ZERO_HASH
        next_hash = self.model.commit_next(who, self.client.chain_id, self.market.address)
        call = lambda: self.market.submit_verdict(  # noqa: E731
            who, job_id, verdict, "evidence", secret, next_hash, self._terms(job))
        if self._try("verdict", ok, call):
            assert job is not None
            if opening:
                self.model.open_secret(job, who.address, next_hash)
            job.state, job.verdict = JobState.AUDITED, verdict
            job.deadline = self.market.audit_of(job_id).deadline
            expected = sampled_task_indices(job.sample_seed, job.terms.num_tasks, job.terms.sample_tasks)
            assert self.market.sampled_tasks(job_id, job.terms) == expected

    def _demand_reveal(self, job_id: int, who: LocalAccount) -> None:
        job = self._job(job_id, JobState.SUBMITTED)
        drawn = job is not None and bool(job.verifier)
        ok: bool | None = False
        if job is not None and drawn and who.address == job.verifier and job.reveal_by == 0:
            ok = self._before(self._now(), job.deadline)
        secret = self.model.secrets[job.commitment] if drawn and job else ZERO_HASH
        next_hash = self.model.commit_next(who, self.client.chain_id, self.market.address)
        call = lambda: self.market.demand_reveal(who, job_id, secret, next_hash, self._terms(job))  # noqa: E731
        if self._try("demand_reveal", ok, call):
            assert job is not None
            self.model.open_secret(job, who.address, next_hash)
            audit = self.market.audit_of(job_id)
            job.reveal_by, job.deadline = audit.reveal_by, audit.deadline
            assert audit.secret == job.sample_seed

    def _reveal_outputs(self, job_id: int, corrupt: bool) -> None:
        job = self._job(job_id, JobState.SUBMITTED)
        pending = job is not None and job.reveal_by > 1
        who = dev_of(job.provider) if job else PROVIDERS[0]
        ok = self._before(self._now(), job.reveal_by) if pending and job and not corrupt else False
        outputs: list[bytes] = []
        proofs: list[list[bytes]] = []
        if pending and job and job.tree:
            indices = sampled_task_indices(job.sample_seed, job.terms.num_tasks, job.terms.sample_tasks)
            everything = outputs_for(job_id, job.terms.num_tasks)
            outputs = [everything[i] for i in indices]
            proofs = [job.tree.proof(i) for i in indices]
            if corrupt:
                outputs[0] = b"not what was committed"
        call = lambda: self.market.reveal_outputs(who, job_id, outputs, proofs, self._terms(job))  # noqa: E731
        if self._try("reveal_outputs", ok, call):
            assert job is not None
            job.reveal_by = 1

    def _fail_unrevealed(self, job_id: int, who: LocalAccount) -> None:
        job = self._job(job_id, JobState.SUBMITTED)
        ok = self._after(self._now(), job.reveal_by) if job and job.reveal_by > 1 else False
        if self._try("fail_unrevealed", ok, lambda: self.market.fail_unrevealed(who, job_id, self._terms(job))):
            assert job is not None
            self.model.settle(job, Verdict.FAIL, job.verifier, True)

    def _redraw(self, job_id: int, who: LocalAccount) -> None:
        job = self._job(job_id, JobState.SUBMITTED)
        ok = self._after(self._now(), job.deadline) if job and job.verifier else False
        if self._try("redraw", ok, lambda: self.market.redraw_verifier(who, job_id, self._terms(job))):
            assert job is not None
            if job.reveal_by > 1:  # the provider never answered the demand: its fault
                self.model.settle(job, Verdict.FAIL, job.verifier, True)
                return
            self.model.stake(job.verifier, Role.VERIFIER).duties -= 1
            slashed = self.model.slash_verifier(job.verifier, self.model.params.no_show_slash_bps, self._block())
            self.model.reward(who.address, slashed)
            job.verifier, job.deadline, job.reveal_by = "", 0, 0
            job.seed = job.commitment = job.sample_seed = ZERO_HASH
            job.seed_block = next_seed_block(self._block())

    def _finalize(self, job_id: int, who: LocalAccount) -> None:
        job = self._job(job_id, JobState.AUDITED)
        ok = self._after(self._now(), job.deadline) if job else False
        if self._try("finalize", ok, lambda: self.market.finalize(who, job_id, self._terms(job))):
            assert job is not None
            self.model.settle(job, job.verdict, job.verifier, True)

    # ───────────────────────────────────── challenges

    def _challenge(self, job_id: int, who: LocalAccount) -> None:
        job = self._job(job_id, JobState.AUDITED)
        ok: bool | None = False
        if job is not None:
            harmed = job.provider if job.verdict is Verdict.FAIL else job.terms.requester
            outsider = (who.address not in (job.verifier, job.provider, job.terms.requester)
                        and self.model.stake(who.address, Role.VERIFIER).stake > 0)
            if who.address == harmed or outsider:
                ok = self._before(self._now(), job.deadline)
        if self._try("challenge", ok, lambda: self.market.challenge(who, job_id, self._terms(job))):
            assert job is not None
            job.state = JobState.CHALLENGED
            job.panel = ModelPanel(who.address, job.terms.bond, next_seed_block(self._block()))

    def _draw_panel(self, job_id: int) -> None:
        job = self._job(job_id, JobState.CHALLENGED)
        panel = job.panel if job else None
        ok: bool | None = False
        block = self._next_block()
        usable = False
        if job is not None and panel is not None and not panel.drawn and block > panel.seed_block:
            ok, usable = True, usable_seed(panel.seed_block, block)  # a draw, a dismissal or a re-arm
        if not self._try("draw_panel", ok, lambda: self.market.draw_panel(REQUESTERS[0], job_id, self._terms(job))):
            return
        assert job is not None and panel is not None
        if not usable:
            assert self.market.panel_of(job_id).size == 0
            panel.seed_block = next_seed_block(self._block())
            return
        excluded = [job.terms.requester, job.provider, job.verifier, panel.challenger]
        if not self.model.anyone_outside(excluded):
            # Nobody can judge: dismissed, the bond back, the first verdict stands.
            assert self.market.get_job(job_id).state is not JobState.CHALLENGED
            self.model.credit(panel.challenger, panel.bond)
            self.model.settle(job, job.verdict, job.verifier, True)
            return
        expected = [self.model.tree.draw(seed, excluded)
                    for seed in panel_seat_seeds(self._hash(panel.seed_block), job_id)]
        on_chain = self.market.panel_of(job_id)
        assert list(on_chain.members) == expected, "the panel is not the model's"
        panel.seats = expected
        panel.commit_by, panel.reveal_by = on_chain.commit_by, on_chain.reveal_by
        for member in expected:
            self.model.stake(member, Role.VERIFIER).duties += 1

    def _vote(self, job_id: int, seat: int, vote: Verdict, misfire: int) -> None:
        """The seat's member commits ``vote`` (for all its seats) if it has not committed, else
        reveals what it committed (``misfire`` sends a non-member, or a reveal that does not match)."""
        job = self._job(job_id, JobState.CHALLENGED)
        panel = job.panel if job else None
        if panel is None or not panel.drawn or misfire < 6:
            who = REQUESTERS[0]  # not a member (or no panel): refused
            self._try("commit_vote", False, lambda: self.market.commit_vote(who, job_id, vote, ZERO_HASH))
            return
        member = panel.seats[seat % len(panel.seats)]
        account = dev_of(member)
        salt = _salt(job_id, member)
        now = self._now()
        if member not in panel.planned:
            if self._try("commit_vote", self._before(now, panel.commit_by),
                         lambda: self.market.commit_vote(account, job_id, vote, salt)):
                panel.planned[member] = vote
            return
        planned = panel.planned[member]
        wrong = misfire < 14
        ok: bool | None = False
        if member not in panel.revealed and not wrong:
            all_committed = len(panel.planned) == len(panel.members)
            phase_open = True if all_committed else self._after(now, panel.commit_by)
            in_time = self._before(now, panel.reveal_by)
            if phase_open is not False and in_time is not False:
                ok = None if phase_open is None or in_time is None else True
        shown = VERDICTS[(VERDICTS.index(planned) + 1) % 3] if wrong else planned
        if self._try("reveal_vote", ok, lambda: self.market.reveal_vote(account, job_id, shown, salt)):
            panel.revealed[member] = planned

    def _resolve(self, job_id: int, who: LocalAccount) -> None:
        job = self._job(job_id, JobState.CHALLENGED)
        panel = job.panel if job else None
        ok: bool | None = False
        if panel is not None and panel.drawn:
            everyone = len(panel.revealed) == len(panel.members)
            ok = True if everyone else self._after(self._now(), panel.reveal_by)
        if self._try("resolve", ok, lambda: self.market.resolve_challenge(who, job_id, self._terms(job))):
            assert job is not None and panel is not None
            self._apply_resolution(job, panel, self._block())

    def _apply_resolution(self, job: ModelJob, panel: ModelPanel, block: int) -> None:
        model, params = self.model, self.model.params
        votes = [panel.revealed.get(member, Verdict.NONE) for member in panel.seats]
        counts = {v: votes.count(v) for v in VERDICTS}
        top = max(counts.values())
        leaders = [v for v in VERDICTS if counts[v] == top]
        outcome = leaders[0] if top and len(leaders) == 1 else Verdict.NONE
        for member, vote in zip(panel.seats, votes, strict=True):  # seat by seat, as the contract
            model.stake(member, Role.VERIFIER).duties -= 1
            if vote is Verdict.NONE:
                model.burned += model.slash_verifier(member, params.no_show_slash_bps, block)
        winners = counts.get(outcome, 0)

        def pay_panel(amount: int) -> None:
            share = amount // winners
            remainder = amount - share * winners
            for member, vote in zip(panel.seats, votes, strict=True):
                if vote is outcome:
                    model.credit(member, share + remainder)
                    remainder = 0

        if outcome is Verdict.NONE:
            model.credit(panel.challenger, panel.bond)
            model.settle(job, job.verdict, job.verifier, True)
        elif outcome is job.verdict:
            pay_panel(panel.bond)
            model.settle(job, job.verdict, job.verifier, True)
        else:
            slashed = model.slash_verifier(job.verifier, params.verifier_slash_bps, block)
            panel_pay = min(slashed, panel.bond)
            pay_panel(panel_pay)
            model.reward(panel.challenger, slashed - panel_pay)
            model.credit(panel.challenger, panel.bond)
            model.settle(job, outcome, panel.challenger, False)

    # ───────────────────────────────────── stakes

    def _join(self, who: LocalAccount, amount: int) -> None:
        stake = self.model.stake(who.address, Role.VERIFIER)
        ok = stake.stake == 0 and amount >= self.model.params.min_verifier_stake
        if self._try("join_as_verifier", ok, lambda: self.market.register(who, Role.VERIFIER, amount)):
            stake.stake = amount
            self.model.touch(who.address, self._block())  # with its last commitment, if it had one
            commitment = self.model.commit_next(who, self.client.chain_id, self.market.address)
            assert self._try("commit_secret", True, lambda: self.market.commit_secret(who, commitment))
            self.model.commitments[who.address] = commitment
            self.model.touch(who.address, self._block())

    def _add_stake(self, who: LocalAccount, amount: int) -> None:
        role = _role(who)
        stake = self.model.stake(who.address, role)
        if self._try("add_stake", stake.stake > 0, lambda: self.market.add_stake(who, role, amount)):
            stake.stake += amount
            if role is Role.VERIFIER:
                self.model.touch(who.address, self._block())

    def _request_unstake(self, who: LocalAccount, amount: int | None) -> None:
        """Unstakes ``amount``, or all the stake that is not locked."""
        role = _role(who)
        stake = self.model.stake(who.address, role)
        if amount is None:
            amount = stake.stake - stake.locked
        remaining = stake.stake - amount
        params = self.model.params
        minimum = params.min_provider_stake if role is Role.PROVIDER else params.min_verifier_stake
        ok = (stake.stake > 0 and 0 < amount <= stake.stake - stake.locked
              and (remaining == 0 or remaining >= minimum))
        if self._try("request_unstake", ok, lambda: self.market.request_unstake(who, role, amount)):
            stake.stake, stake.unbonding = remaining, stake.unbonding + amount
            view = self.market.provider_stake if role is Role.PROVIDER else self.market.verifier_stake
            stake.unlock_at = view(who.address).unlock_at
            if role is Role.VERIFIER:
                self.model.touch(who.address, self._block())

    def _withdraw_stake(self, who: LocalAccount) -> None:
        role = _role(who)
        stake = self.model.stake(who.address, role)
        ok: bool | None = False
        # A verifier takes out no stake the draw still counts: outside a sync phase, its weight
        # must already be down to its stake (in one, the withdrawal syncs it first).
        synced = (role is Role.PROVIDER or in_sync_phase(self._next_block())
                  or self.model.tree.weight(who.address) <= stake.stake)
        if stake.unbonding > 0 and stake.duties == 0 and synced:
            ok = self._after(self._now(), stake.unlock_at - 1)
        before = self.token.balance_of(who.address)
        if self._try("withdraw_stake", ok, lambda: self.market.withdraw_stake(who, role)):
            assert self.token.balance_of(who.address) == before + stake.unbonding
            stake.unbonding = 0
            if role is Role.VERIFIER:
                self.model.touch(who.address, self._block())

    def _sync(self, caller: LocalAccount, verifier: LocalAccount) -> None:
        ok = in_sync_phase(self._next_block())
        if self._try("sync", ok, lambda: self.market.sync_verifier(caller, verifier.address)):
            self.model.touch(verifier.address, self._block())

    token: WebiToken


class Setup(Actions):
    """Builds the starting chain through the same model-keeping actions the machine uses."""

    def __init__(self, start: Start) -> None:
        self.client, self.market, self.token, self.model = start.client, start.market, start.token, start.model

    def to_sync_phase(self, txs: int) -> None:
        """Mines so that the next ``txs`` transactions land in one sync phase."""
        block = self._next_block()
        if not (in_sync_phase(block) and in_sync_phase(block + txs - 1)):
            mine(self.client, block - block % EPOCH_BLOCKS + EPOCH_BLOCKS - block)

    def to_draw_phase(self, txs: int) -> None:
        """Mines so that the next ``txs`` transactions land outside a sync phase, in one epoch."""
        block = self._next_block()
        offset = block % EPOCH_BLOCKS
        if offset < SYNC_BLOCKS:
            mine(self.client, SYNC_BLOCKS - offset)
        elif offset + txs > EPOCH_BLOCKS:
            mine(self.client, EPOCH_BLOCKS - offset + SYNC_BLOCKS)


@pytest.fixture(scope="module")
def start(devnet: Devnet) -> Iterator[Start]:
    """Actors staked, and jobs in every state up to a panel whose votes are committed; the module
    leaves the session chain as it found it."""
    taken = snapshot(devnet.client)
    url = str(getattr(devnet.client.w3.provider, "endpoint_uri", ""))
    client = DevClient(url, devnet.client.decoder)
    contract = client.w3.eth.contract(address=devnet.protocol.market.contract.address,
                                      abi=devnet.protocol.market.contract.abi)
    market = JobMarket(client, contract, from_block=devnet.protocol.deployment.block)
    token = WebiToken(client, client.w3.eth.contract(address=devnet.protocol.token.contract.address,
                                                     abi=devnet.protocol.token.contract.abi))
    # The shortest cooldown the bounds allow, so that exits complete within an example.
    params = dataclasses.replace(market.params(), unstake_cooldown=3_600)
    governance = Governance(devnet.client, devnet.protocol.deployment.governance or "")
    proposal = governance.schedule(dev(0), devnet.protocol.market.contract.functions.setParams(params.as_tuple()))
    increase_time(devnet.client, governance.delay() + 1)
    governance.execute(dev(0), proposal)
    model = Model(market.params())
    assert model.params == params
    Counter.done.clear()
    Counter.refused.clear()
    state = Start(devnet, client, market, token, model)
    setup = Setup(state)
    for account in ACTORS:
        token.approve(account, market.address, MAX_UINT)
    for account in PROVIDERS:
        market.register(account, Role.PROVIDER, 1_000 * WEI)
        model.stake(account.address, Role.PROVIDER).stake = 1_000 * WEI
    for account, amount in zip(VERIFIERS, VERIFIER_STAKES, strict=True):
        setup.to_sync_phase(2)
        setup._join(account, amount)
    assert len(model.tree.leaves) == len(VERIFIERS)
    r0, r1 = REQUESTERS
    p0, p1 = PROVIDERS
    tasks = [(8, 4), (100, 64), (16, 4), (3, 4), (16, 1), (50, 8), (16, 4), (16, 4), (16, 4), (16, 4), (16, 4),
             (16, 4)]
    ids: list[int] = []
    for i, (n, k) in enumerate(tasks):
        setup._post((r0, r1)[i % 2], n, k, n * model.params.min_task_price + (i + 1) * WEI)
        ids.append(max(model.jobs))
    # ids[0], ids[1]: open. ids[2]: claimed. ids[3]: submitted. ids[4]: drawn. ids[5]: reveal demanded.
    for i, job_id in enumerate(ids[2:], start=2):
        setup._claim(job_id, (p0, p1)[i % 2])
    for job_id in ids[3:]:
        setup.to_draw_phase(4)
        setup._submit(job_id, dev_of(model.jobs[job_id].provider))
        if job_id != ids[3]:
            mine(client, 1)
            setup._lock_seed(job_id, r0)
            assert model.jobs[job_id].verifier, "the starting chain draws every audit"
    job = model.jobs[ids[5]]
    setup._demand_reveal(ids[5], dev_of(job.verifier))
    # ids[6..8]: audited pass, fail, inconclusive. ids[9..11]: challenged; the last two with panels.
    for job_id, verdict in zip(ids[6:], [*VERDICTS, Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE],
                               strict=True):
        setup._verdict(job_id, dev_of(model.jobs[job_id].verifier), verdict)
    for job_id in ids[9:]:
        job = model.jobs[job_id]
        setup._challenge(job_id, dev_of(job.provider if job.verdict is Verdict.FAIL else job.terms.requester))
    for job_id in ids[10:]:
        while not (model.jobs[job_id].panel and model.jobs[job_id].panel.drawn):  # type: ignore[union-attr]
            setup.to_draw_phase(2)
            setup._draw_panel(job_id)
    panel = model.jobs[ids[11]].panel
    assert panel is not None and panel.drawn
    for member, vote in zip(panel.members, VERDICTS, strict=False):
        setup._vote(ids[11], panel.seats.index(member), vote, 99)
    assert len(panel.planned) == len(panel.members)
    assert all(Counter.refused[name] == 0 for name in Counter.refused), dict(Counter.refused)
    Counter.done.clear()
    yield state
    revert(devnet.client, taken)


# ───────────────────────────────────────────── the machine


class MarketMachine(Actions, RuleBasedStateMachine):
    start: Start

    def __init__(self) -> None:
        super().__init__()
        self.client = self.start.client
        self.market = self.start.market
        self.token = self.start.token
        self.model = copy.deepcopy(self.start.model)
        self.snapshot = snapshot(self.client)
        self.treasury = self.market.treasury()
        self.calls = _BookCalls(self.market, self.token)

    def teardown(self) -> None:
        revert(self.client, self.snapshot)

    def _pick_job(self, data: st.DataObject, *want: JobState) -> int:
        """Mostly a job in a state the action needs; sometimes any job, or one that does not exist."""
        ids = sorted(self.model.jobs)
        fitting = [i for i in ids if self.model.jobs[i].state in want]
        # Fixed-shape draws: what the chain did must not change what hypothesis draws.
        prefer_fitting = data.draw(st.integers(0, 99)) < 88
        pick = data.draw(st.integers(0, 2**20))
        if fitting and prefer_fitting:
            return fitting[pick % len(fitting)]
        choices = [*ids, max(ids) + 1]
        return choices[pick % len(choices)]

    # ───────────────────────────────────── the rule

    @rule(data=st.data())
    def step(self, data: st.DataObject) -> None:
        """One action, drawn by weight from SCHEDULE.

        One rule that dispatches, rather than a rule per action: hypothesis's swarm testing
        disables a random subset of rules in each example, and with two dozen rules some examples
        then spend every step on a withdrawal.
        """
        name = data.draw(st.sampled_from(SCHEDULE))
        Counter.step(name)
        getattr(self, f"do_{name}")(data)

    # ───────────────────────────────────── jobs

    def do_post(self, data: st.DataObject) -> None:
        who = data.draw(st.sampled_from(REQUESTERS))
        tasks, sample = data.draw(st.integers(1, 300)), data.draw(st.sampled_from([1, 4, 64]))
        extra, dust = data.draw(st.integers(0, 60 * WEI)), data.draw(st.integers(0, 99))
        minimum = tasks * self.model.params.min_task_price
        self._post(who, tasks, sample, minimum - 1 if dust < 10 else minimum + extra)

    def do_cancel(self, data: st.DataObject) -> None:
        job_id = self._pick_job(data, JobState.OPEN)
        other, as_requester = data.draw(st.sampled_from(ACTORS)), data.draw(st.integers(0, 99))
        job = self.model.jobs.get(job_id)
        self._cancel(job_id, dev_of(job.terms.requester) if job and as_requester < 80 else other)

    def do_claim(self, data: st.DataObject) -> None:
        job_id = self._pick_job(data, JobState.OPEN)
        self._claim(job_id, data.draw(st.sampled_from(PROVIDERS * 3 + REQUESTERS[:1])))

    def do_reclaim(self, data: st.DataObject) -> None:
        self._reclaim(self._pick_job(data, JobState.CLAIMED), data.draw(st.sampled_from(ACTORS)))

    def do_submit(self, data: st.DataObject) -> None:
        job_id = self._pick_job(data, JobState.CLAIMED)
        other, as_provider = data.draw(st.sampled_from(PROVIDERS + REQUESTERS[:1])), data.draw(st.integers(0, 99))
        job = self._job(job_id, JobState.CLAIMED)
        self._submit(job_id, dev_of(job.provider) if job and as_provider < 85 else other)

    # ───────────────────────────────────── audits

    def do_lock_seed(self, data: st.DataObject) -> None:
        job_id = self._pick_job(data, JobState.SUBMITTED)
        who, mine_first = data.draw(st.sampled_from(ACTORS)), data.draw(st.integers(0, 99))
        if mine_first < 60:
            mine(self.client, 2)
        self._lock_seed(job_id, who)

    def do_verdict(self, data: st.DataObject) -> None:
        job_id = self._pick_job(data, JobState.SUBMITTED)
        verdict = data.draw(st.sampled_from([*VERDICTS, Verdict.PASS, Verdict.FAIL, Verdict.NONE]))
        other, as_verifier = data.draw(st.sampled_from(VERIFIERS)), data.draw(st.integers(0, 99))
        job = self._job(job_id, JobState.SUBMITTED)
        self._verdict(job_id, dev_of(job.verifier) if job and job.verifier and as_verifier < 88 else other, verdict)

    def do_demand_reveal(self, data: st.DataObject) -> None:
        job_id = self._pick_job(data, JobState.SUBMITTED)
        other, as_verifier = data.draw(st.sampled_from(ACTORS)), data.draw(st.integers(0, 99))
        job = self._job(job_id, JobState.SUBMITTED)
        self._demand_reveal(job_id, dev_of(job.verifier) if job and job.verifier and as_verifier < 88 else other)

    def do_reveal_outputs(self, data: st.DataObject) -> None:
        self._reveal_outputs(self._pick_job(data, JobState.SUBMITTED), data.draw(st.integers(0, 99)) < 10)

    def do_fail_unrevealed(self, data: st.DataObject) -> None:
        self._fail_unrevealed(self._pick_job(data, JobState.SUBMITTED), data.draw(st.sampled_from(ACTORS)))

    def do_redraw(self, data: st.DataObject) -> None:
        self._redraw(self._pick_job(data, JobState.SUBMITTED), data.draw(st.sampled_from(ACTORS)))

    def do_finalize(self, data: st.DataObject) -> None:
        self._finalize(self._pick_job(data, JobState.AUDITED), data.draw(st.sampled_from(ACTORS)))

    # ───────────────────────────────────── challenges

    def do_challenge(self, data: st.DataObject) -> None:
        self._challenge(self._pick_job(data, JobState.AUDITED), data.draw(st.sampled_from(ACTORS)))

    def do_draw_panel(self, data: st.DataObject) -> None:
        job_id = self._pick_job(data, JobState.CHALLENGED)
        if data.draw(st.integers(0, 99)) < 60:
            mine(self.client, 2)
        self._draw_panel(job_id)

    def do_vote(self, data: st.DataObject) -> None:
        job_id = self._pick_job(data, JobState.CHALLENGED)
        vote, seat = data.draw(st.sampled_from(VERDICTS)), data.draw(st.integers(0, PANEL_SIZE - 1))
        self._vote(job_id, seat, vote, data.draw(st.integers(0, 99)))

    def do_resolve(self, data: st.DataObject) -> None:
        self._resolve(self._pick_job(data, JobState.CHALLENGED), data.draw(st.sampled_from(ACTORS)))

    # ───────────────────────────────────── the happy path

    def do_progress(self, data: st.DataObject) -> None:
        """Moves a live job one step along its path, as the party whose turn it is: short examples
        then still reach verdicts, challenges, votes and resolutions."""
        pick, choice, branch = data.draw(st.integers(0, 2**20)), data.draw(st.sampled_from(VERDICTS)), \
            data.draw(st.integers(0, 99))
        live = [i for i, j in sorted(self.model.jobs.items()) if j.state in LIVE_STATES]
        if not live:
            return
        job_id = live[pick % len(live)]
        job = self.model.jobs[job_id]
        requester = dev_of(job.terms.requester)
        if job.state is JobState.OPEN:
            self._claim(job_id, PROVIDERS[job_id % 2])
        elif job.state is JobState.CLAIMED:
            self._submit(job_id, dev_of(job.provider))
        elif job.state is JobState.SUBMITTED and not job.verifier:
            if self._next_block() <= job.seed_block:
                mine(self.client, job.seed_block + 1 - self._next_block() + 1)
            self._lock_seed(job_id, requester)
        elif job.state is JobState.SUBMITTED and job.reveal_by > 1:
            self._reveal_outputs(job_id, False)
        elif job.state is JobState.SUBMITTED:
            verifier = dev_of(job.verifier)
            if branch < 15 and job.reveal_by == 0:
                self._demand_reveal(job_id, verifier)
            else:
                self._verdict(job_id, verifier, choice)
        elif job.state is JobState.AUDITED and branch < 50:
            self._challenge(job_id, dev_of(job.provider) if job.verdict is Verdict.FAIL else requester)
        elif job.state is JobState.AUDITED:
            self._finalize(job_id, requester)
        elif job.panel is not None and not job.panel.drawn:
            if self._next_block() <= job.panel.seed_block:
                mine(self.client, job.panel.seed_block + 1 - self._next_block() + 1)
            self._draw_panel(job_id)
        elif job.panel is not None and len(job.panel.revealed) < len(job.panel.members) and branch < 80:
            # Everyone commits first, then everyone reveals.
            members = job.panel.members
            pending = [m for m in members if m not in job.panel.planned] or [
                m for m in members if m not in job.panel.revealed]
            self._vote(job_id, job.panel.seats.index(pending[0]), choice, 99)
        else:
            self._resolve(job_id, requester)

    # ───────────────────────────────────── money and stake

    def do_withdraw(self, data: st.DataObject) -> None:
        other, pick, owed_first = data.draw(st.sampled_from(ACTORS)), data.draw(st.integers(0, 2**20)), \
            data.draw(st.integers(0, 99))
        owed = [a for a in ACTORS if self.model.credits.get(a.address, 0)]
        who = owed[pick % len(owed)] if owed and owed_first < 80 else other
        amount = self.model.credits.get(who.address, 0)
        before = self.token.balance_of(who.address)
        if self._try("withdraw", amount > 0, lambda: self.market.withdraw(who)):
            assert self.token.balance_of(who.address) == before + amount
            self.model.credits[who.address] = 0

    def do_withdraw_protocol_fees(self, data: st.DataObject) -> None:
        call = lambda: self.market.withdraw_protocol_fees(REQUESTERS[0])  # noqa: E731
        if self._try("withdraw_protocol_fees", self.model.protocol_fees > 0, call):
            self.model.protocol_fees = 0

    def do_join_as_verifier(self, data: st.DataObject) -> None:
        who = data.draw(st.sampled_from(VERIFIERS))
        self._join(who, data.draw(st.integers(500 * WEI, 4_000 * WEI)))

    def do_add_stake(self, data: st.DataObject) -> None:
        who, amount = data.draw(st.sampled_from(PROVIDERS + VERIFIERS)), data.draw(st.integers(1, 500 * WEI))
        self._add_stake(who, amount)

    def do_request_unstake(self, data: st.DataObject) -> None:
        """Partial unstakes, and exits (everything: a verifier leaves the draw at the next sync)."""
        who, amount = data.draw(st.sampled_from(PROVIDERS + VERIFIERS)), data.draw(st.integers(1, 1_500 * WEI))
        everything = data.draw(st.booleans())
        self._request_unstake(who, None if everything else amount)

    def do_withdraw_stake(self, data: st.DataObject) -> None:
        other, pick, unbonding_first = data.draw(st.sampled_from(PROVIDERS + VERIFIERS)), \
            data.draw(st.integers(0, 2**20)), data.draw(st.integers(0, 99))
        # Mostly someone with stake unbonding and no open duty (the cooldown may or may not be over).
        free = [a for a in PROVIDERS + VERIFIERS if self.model.stake(a.address, _role(a)).unbonding
                and not self.model.stake(a.address, _role(a)).duties]
        self._withdraw_stake(free[pick % len(free)] if free and unbonding_first < 80 else other)

    def do_exit(self, data: st.DataObject) -> None:
        """A staker leaves: it unstakes all it can, waits out the cooldown and withdraws (refused
        while its audits and panels are open)."""
        who = data.draw(st.sampled_from(PROVIDERS + VERIFIERS))
        self._request_unstake(who, None)
        increase_time(self.client, self.model.params.unstake_cooldown + 1)
        self._withdraw_stake(who)

    def do_sync(self, data: st.DataObject) -> None:
        """Anyone applies a verifier's stake to the draw (refused outside a sync phase)."""
        caller, verifier = data.draw(st.sampled_from(ACTORS)), data.draw(st.sampled_from(VERIFIERS))
        if data.draw(st.integers(0, 99)) < 50:
            block = self._next_block()
            mine(self.client, next_sync_block(block) - block)
        self._sync(caller, verifier)

    # ───────────────────────────────────── time

    def do_advance_time(self, data: st.DataObject) -> None:
        increase_time(self.client, data.draw(st.sampled_from([30, 120, 700, 1_800, 3_700, 7_300, 3 * 86_400])))

    def do_mine(self, data: st.DataObject) -> None:
        mine(self.client, data.draw(st.sampled_from([1, 2, 7, 30, 300])))

    # ───────────────────────────────────── invariants

    @invariant()
    def books_balance_to_the_wei(self) -> None:
        books = self.calls.read(sorted(self.model.jobs))
        model = self.model
        for address in [a.address for a in ACTORS] + [self.treasury]:
            assert books.credits[address] == model.credits.get(address, 0), f"credits of {address}"
        assert books.protocol_fees == model.protocol_fees
        assert books.burned == model.burned
        for (address, role), (stake, locked, unbonding, duties) in books.stakes.items():
            m = model.stake(address, role)
            assert (stake, locked, unbonding) == (m.stake, m.locked, m.unbonding), (address, role)
            if role is Role.VERIFIER:
                assert duties == m.duties, f"duties of {address}"
        for address, weight in books.weights.items():
            assert weight == model.tree.weight(address), f"weight of {address}"
        assert books.total_weight == model.tree.total
        assert books.count == len(model.tree.leaves)
        for job_id, state in books.states.items():
            assert state is model.jobs[job_id].state, f"job {job_id}"
        # Conservation: every wei in the contract is a stake, a credit, a fee, an escrow, a bond or burned.
        assert books.balance == model.total()


@dataclass
class Books:
    balance: int
    protocol_fees: int
    burned: int
    credits: dict[str, int]
    stakes: dict[tuple[str, Role], tuple[int, int, int, int]]
    weights: dict[str, int]
    total_weight: int
    count: int
    states: dict[int, JobState]


class _BookCalls:
    """Every view the invariant reads, encoded once, read in one JSON-RPC batch."""

    def __init__(self, market: JobMarket, token: WebiToken) -> None:
        self.market, self.token = market, token
        functions = market.contract.functions
        treasury = market.treasury()
        m, t = market.address, token.address
        self.fixed: list[tuple[str, Any, str, str]] = [
            ("balance", None, t, token.contract.functions.balanceOf(m)._encode_transaction_data()),
            ("fees", None, m, functions.protocolFees()._encode_transaction_data()),
            ("burned", None, m, functions.burned()._encode_transaction_data()),
            ("total", None, m, functions.totalVerifierWeight()._encode_transaction_data()),
            ("count", None, m, functions.verifierCount()._encode_transaction_data()),
        ]
        for address in [a.address for a in ACTORS] + [treasury]:
            self.fixed.append(("credit", address, m, functions.credits(address)._encode_transaction_data()))
        for account in ACTORS:
            for role in Role:
                view = functions.providerStake if role is Role.PROVIDER else functions.verifierStake
                self.fixed.append(("stake", (account.address, role), m,
                                   view(account.address)._encode_transaction_data()))
        for account in VERIFIERS:
            self.fixed.append(("weight", account.address, m,
                               functions.verifierWeight(account.address)._encode_transaction_data()))
        self.jobs: dict[int, str] = {}

    def read(self, job_ids: list[int]) -> Books:
        for job_id in job_ids:
            if job_id not in self.jobs:
                self.jobs[job_id] = self.market.contract.functions.getJob(job_id)._encode_transaction_data()
        calls = [*self.fixed, *[("job", job_id, self.market.address, self.jobs[job_id]) for job_id in job_ids]]
        client = self.market.client
        assert isinstance(client, DevClient)
        replies = client.batch([(to, data) for _, _, to, data in calls])
        books = Books(0, 0, 0, {}, {}, {}, 0, 0, {})
        for (kind, key, _, _), raw in zip(calls, replies, strict=True):
            words = [int.from_bytes(raw[i:i + 32], "big") for i in range(0, len(raw), 32)]
            if kind == "balance":
                books.balance = words[0]
            elif kind == "fees":
                books.protocol_fees = words[0]
            elif kind == "burned":
                books.burned = words[0]
            elif kind == "total":
                books.total_weight = words[0]
            elif kind == "count":
                books.count = words[0]
            elif kind == "credit":
                books.credits[key] = words[0]
            elif kind == "stake":  # (stake, locked, unlockAt, duties, unbonding)
                books.stakes[key] = (words[0], words[1], words[4], words[3])
            elif kind == "weight":
                books.weights[key] = words[0]
            else:
                books.states[key] = JobState(words[0])
        return books


def test_random_action_sequences_keep_the_books(start: Start) -> None:
    MarketMachine.start = start
    Counter.steps = 0
    Counter.done.clear()
    Counter.rules.clear()
    Counter.refused.clear()
    run_state_machine_as_test(
        MarketMachine,
        # Derandomized by default so that CI replays the same examples; the long profile explores.
        settings=settings(max_examples=EXAMPLES, stateful_step_count=STEPS_PER_EXAMPLE, deadline=None,
                          derandomize=not LONG, database=None),
    )
    assert Counter.steps >= MIN_STEPS, f"only {Counter.steps} steps ran"
    # The main paths ran, and were refused, at least once each (rarer ones, such as expiries, depend
    # on which draws the block hashes made).
    for action in ("post", "claim", "submit", "lock_seed", "verdict", "demand_reveal", "reveal_outputs",
                   "finalize", "challenge", "draw_panel", "commit_vote", "reveal_vote", "resolve", "withdraw",
                   "request_unstake", "withdraw_stake"):
        assert Counter.done[action] and Counter.refused[action], (
            f"{action}: {Counter.done[action]} went through, {Counter.refused[action]} refused")


def test_the_event_log_rebuilds_every_balance_stake_bond_and_burn(start: Start) -> None:
    """The auditor's claim: from the events alone, every credit, stake, unbonding stake, protocol
    fee, escrow, bond and burn, and so the market's token balance."""
    MarketMachine.start = start
    machine = MarketMachine()
    try:
        model, market = machine.model, machine.market
        # Settle what the starting chain left open, through as many paths as possible.
        increase_time(machine.client, 3 * 86_400)
        for job_id, job in sorted(model.jobs.items()):
            if job.state is JobState.AUDITED:
                market.finalize(REQUESTERS[0], job_id, job.terms)
            elif job.state is JobState.CLAIMED:
                market.reclaim_expired(REQUESTERS[1], job_id, job.terms)
            elif job.state is JobState.OPEN:
                market.cancel_job(dev_of(job.terms.requester), job_id, job.terms)
            elif job.state is JobState.SUBMITTED and job.reveal_by > 1:
                market.fail_unrevealed(REQUESTERS[0], job_id, job.terms)
            elif job.state is JobState.SUBMITTED and job.verifier:
                market.redraw_verifier(REQUESTERS[0], job_id, job.terms)
            elif job.state is JobState.CHALLENGED and job.panel and job.panel.drawn:
                market.resolve_challenge(REQUESTERS[0], job_id, job.terms)
        market.withdraw(REQUESTERS[0])
        leaving = VERIFIERS[0].address
        market.request_unstake(VERIFIERS[0], Role.VERIFIER, market.verifier_stake(leaving).stake)
        rebuilt = rebuild_from_events(machine.client, market, start.devnet.protocol.deployment.block)
        for address, amount in rebuilt.credits.items():
            assert market.credits(address) == amount, address
        for (address, role), (stake, unbonding) in rebuilt.stakes.items():
            view = market.provider_stake if role is Role.PROVIDER else market.verifier_stake
            on_chain = view(address)
            assert (on_chain.stake, on_chain.unbonding) == (stake, unbonding), (address, role)
        assert market.protocol_fees() == rebuilt.protocol_fees
        assert market.burned() == rebuilt.burned
        for account in VERIFIERS:
            assert market.verifier_weight(account.address) == rebuilt.weights.get(account.address, 0)
        assert rebuilt.bonds and rebuilt.escrows, "the log must hold open bonds and escrows"
        assert machine.token.balance_of(market.address) == rebuilt.total()
    finally:
        machine.teardown()


@dataclass
class Rebuilt:
    credits: dict[str, int] = field(default_factory=dict)
    stakes: dict[tuple[str, Role], tuple[int, int]] = field(default_factory=dict)
    protocol_fees: int = 0
    burned: int = 0
    escrows: dict[int, int] = field(default_factory=dict)
    bonds: dict[int, int] = field(default_factory=dict)
    weights: dict[str, int] = field(default_factory=dict)

    def move(self, key: tuple[str, Role], stake: int, unbonding: int) -> None:
        old = self.stakes.get(key, (0, 0))
        self.stakes[key] = (old[0] + stake, old[1] + unbonding)

    def total(self) -> int:
        return (sum(s + u for s, u in self.stakes.values()) + sum(self.credits.values()) + self.protocol_fees
                + self.burned + sum(self.escrows.values()) + sum(self.bonds.values()))


def rebuild_from_events(client: DevClient, market: JobMarket, from_block: int) -> Rebuilt:
    books = Rebuilt()
    for event in client.events(market.contract, from_block):
        name, args = event["event"], event["args"]
        if name == "Credited" and args["kind"] == CreditKind.PROTOCOL_FEE:
            books.protocol_fees += args["amount"]
        elif name == "Credited":
            books.credits[args["account"]] = books.credits.get(args["account"], 0) + args["amount"]
        elif name == "Withdrawn":
            books.credits[args["account"]] -= args["amount"]
        elif name == "ProtocolFeesWithdrawn":
            books.protocol_fees -= args["amount"]
        elif name == "Burned":
            books.burned += args["amount"]
        elif name in ("Registered", "StakeAdded"):
            books.move((args["account"], Role(args["role"])), args["amount"], 0)
        elif name == "UnstakeRequested":
            books.move((args["account"], Role(args["role"])), -args["amount"], args["amount"])
        elif name == "StakeWithdrawn":
            books.move((args["account"], Role(args["role"])), 0, -args["amount"])
        elif name == "Slashed":
            books.move((args["account"], Role(args["role"])), -args["fromStake"], -args["fromUnbonding"])
        elif name == "JobPosted":
            books.escrows[args["jobId"]] = args["terms"]["price"] + args["terms"]["auditFee"]
        elif name in ("JobCancelled", "JobSettled"):
            del books.escrows[args["jobId"]]
        elif name == "Challenged":
            books.bonds[args["jobId"]] = args["bond"]
        elif name == "ChallengeResolved":
            del books.bonds[args["jobId"]]
        elif name == "WeightChanged":
            books.weights[args["verifier"]] = args["weight"]
    assert ZERO_ADDRESS not in books.credits
    return books
