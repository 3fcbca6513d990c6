"""Stateful property test: random sequences of every action of the protocol by several actors.

After every step, the market's token balance equals, to the wei, all stakes and unbonding stakes
plus all credits plus accrued protocol fees plus the escrow (price and audit fee) of live jobs plus
the bonds of challenged jobs plus everything burned; every stake, duty, credit, fee, burn, job state
and draw weight equals an independent Python model's (tests/contracts/market_model.py); no job pays
its provider twice; and every call succeeds exactly when the model says the protocol allows it
(calls within a few seconds of a deadline may go either way).

The model keeps its own sortition tree, so it predicts every draw: from the seed block's hash, the
verifier lockSeed draws and the seats drawPanel fills, or that the seed is re-armed, or that
nobody is eligible.

Every example starts from the same chain: actors staked and a dozen jobs in every state up to a
panel with every vote committed, so that short runs reach verdicts, challenges, votes and
resolutions. The default run makes at least 2,000 steps; HYPOTHESIS_PROFILE=long at least 10,000.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import Anvil, Devnet, deploy_devnet, increase_time, mine, revert, snapshot
from marketplace.chain.governance import Governance
from marketplace.chain.market import JobMarket
from marketplace.chain.token import WebiToken
from marketplace.protocol import (
    LIVE_STATES,
    PANEL_SIZE,
    ZERO_ADDRESS,
    CreditKind,
    JobState,
    Role,
    Verdict,
    next_sync_block,
)
from tests.conftest import MAX_UINT
from tests.contracts.market_model import (
    ACTORS,
    PROVIDERS,
    REQUESTERS,
    VERDICTS,
    VERIFIER_STAKES,
    VERIFIERS,
    Actions,
    Counter,
    Model,
    Setup,
    Start,
    dev_of,
    role_of,
)
from tests.contracts.support import DevClient, dev

pytestmark = pytest.mark.fuzz

LONG = os.environ.get("HYPOTHESIS_PROFILE") == "long"
EXAMPLES, STEPS_PER_EXAMPLE, MIN_STEPS = (220, 60, 10_000) if LONG else (48, 50, 2_000)
# How often each action is drawn; "progress" moves some live job along its path.
WEIGHTS = {
    "progress": 14, "post": 3, "cancel": 1, "claim": 2, "reclaim": 1, "submit": 2, "lock_seed": 2, "verdict": 2,
    "demand_reveal": 1, "reveal_outputs": 1, "fail_unrevealed": 1, "redraw": 1, "finalize": 2, "challenge": 2,
    "draw_panel": 1, "vote": 3, "resolve": 2, "withdraw": 2, "withdraw_protocol_fees": 1, "join_as_verifier": 1,
    "add_stake": 1, "request_unstake": 2, "withdraw_stake": 1, "exit": 1, "sync": 2, "advance_time": 5, "mine": 3,
}
SCHEDULE = [name for name, weight in WEIGHTS.items() for _ in range(weight)]


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    """A chain of this module's own: the examples replay the same block hashes, so the same draws,
    whichever test files ran before on this worker's session chain."""
    with Anvil(accounts=20, log_path=tmp_path_factory.mktemp("anvil") / "anvil.log", pinned_clock=True) as anvil:
        yield deploy_devnet(anvil, fund_accounts=19)


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
    p0, p1 = PROVIDERS[:2]
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
        share, kind = data.draw(st.integers(0, 10_000)), data.draw(st.integers(0, 99))
        params = self.model.params
        minimum = tasks * params.min_task_price
        # The dearest price whose sampled tasks stay within their cap (and the job within the price cap).
        dearest = min(params.min_verifier_stake * params.verifier_slash_bps // 10_000,
                      params.min_verifier_stake * params.verifier_slash_bps // 10_000 // 80 * tasks
                      // min(sample, tasks))
        if kind < 10:
            price = minimum - 1  # dust
        elif kind < 18:
            price = dearest + 1 + share * WEI // 1_000  # above a cap
        else:
            price = minimum + max(dearest - minimum, 0) * share // 10_000
        self._post(who, tasks, sample, price)

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
        free = [a for a in PROVIDERS + VERIFIERS if self.model.stake(a.address, role_of(a)).unbonding
                and not self.model.stake(a.address, role_of(a)).duties]
        self._withdraw_stake(free[pick % len(free)] if free and unbonding_first < 80 else other)

    def do_exit(self, data: st.DataObject) -> None:
        """A staker leaves: it unstakes all it can, waits out the cooldown and withdraws (refused
        while its audits and panels are open, and for a verifier outside a sync phase while the
        draw still counts its stake)."""
        other, pick, idle_first, in_sync = data.draw(st.sampled_from(PROVIDERS + VERIFIERS)), \
            data.draw(st.integers(0, 2**20)), data.draw(st.integers(0, 99)), data.draw(st.integers(0, 99))
        idle = [a for a in PROVIDERS + VERIFIERS if self.model.stake(a.address, role_of(a)).stake
                and not self.model.stake(a.address, role_of(a)).duties
                and not self.model.stake(a.address, role_of(a)).locked]
        who = idle[pick % len(idle)] if idle and idle_first < 80 else other
        self._request_unstake(who, None)
        increase_time(self.client, self.model.params.unstake_cooldown + 1)
        if in_sync < 60:
            block = self._next_block()
            mine(self.client, next_sync_block(block) - block)
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


@pytest.mark.slow
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
