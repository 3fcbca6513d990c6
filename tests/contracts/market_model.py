"""The model the market's stateful test checks the chain against, and the actions it takes.

``Model`` holds what the market must hold, computed from the rules of the protocol alone: stakes,
duties, credits, fees, burns, escrows, bonds, job states, secret commitments and its own sortition
tree (weights change only in sync phases, leaves in the contract's order), so that it predicts every
draw from the seed block's hash. ``Actions`` sends each call of the protocol through the market and,
when it goes through, applies its effects to the model; each states beforehand whether the model
says the call must go through, must revert, or may go either way (a deadline within ``SLACK``).
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from eth_account.signers.local import LocalAccount

from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import Devnet, mine
from marketplace.chain.market import JobMarket
from marketplace.chain.token import WebiToken
from marketplace.errors import ContractError
from marketplace.protocol import (
    BPS,
    EPOCH_BLOCKS,
    LIVE_STATES,
    SYNC_BLOCKS,
    ZERO_ADDRESS,
    ZERO_HASH,
    JobRequest,
    JobState,
    JobTerms,
    Params,
    Role,
    Verdict,
    audit_secret,
    draw_seed,
    in_sync_phase,
    sample_seed,
    sampled_task_indices,
    secret_hash,
)
from marketplace.results import MerkleTree
from tests.conftest import OUTPUT_CID
from tests.contracts.support import (
    DevClient,
    SortitionModel,
    dev,
    next_seed_block,
    outputs_for,
    panel_seat_seeds,
    usable_seed,
)

SLACK = 5  # seconds around a deadline where either outcome is accepted
REQUESTERS = [dev(10), dev(11)]
# The third provider holds no claim in the starting chain, so that exits can complete early in an
# example (every verifier there has an audit or a panel seat open).
PROVIDERS = [dev(12), dev(13), dev(9)]
VERIFIERS = [dev(i) for i in range(14, 20)]
ACTORS = REQUESTERS + PROVIDERS + VERIFIERS
VERIFIER_STAKES = [amount * WEI for amount in (1_000, 1_500, 2_000, 2_500, 3_000, 4_000)]
VERDICTS = [Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE]
EXEC_WINDOW = 2 * 3_600  # a claim outlives short time steps, not long ones


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


def role_of(account: LocalAccount) -> Role:
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
        params = self.model.params
        cap = params.min_verifier_stake * params.verifier_slash_bps // 10_000
        # The sampled tasks are worth at most cap / 80: a lazy pass must save less than it risks.
        ok = (price >= tasks * params.min_task_price and price <= cap
              and price * min(sample, tasks) * 80 <= cap * tasks)
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
        elif outcome is job.verdict or Verdict.FAIL not in (outcome, job.verdict):
            # Pass and inconclusive both pay the provider: moving between them upholds the verdict.
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
        role = role_of(who)
        stake = self.model.stake(who.address, role)
        if self._try("add_stake", stake.stake > 0, lambda: self.market.add_stake(who, role, amount)):
            stake.stake += amount
            if role is Role.VERIFIER:
                self.model.touch(who.address, self._block())

    def _request_unstake(self, who: LocalAccount, amount: int | None) -> None:
        """Unstakes ``amount``, or all the stake that is not locked."""
        role = role_of(who)
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
        role = role_of(who)
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
