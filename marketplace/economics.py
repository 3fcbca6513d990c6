"""What each strategy earns under the protocol's terms: the arithmetic behind the security model.

All amounts are expected values per job (providers) or per audit a verifier is drawn for
(verifiers), in WEBI unless a name says otherwise. The contracts fix who gets what in each outcome
(``MarketBase._settle``, ``Disputes.resolveChallenge``); this module weighs those outcomes by
their probabilities. ``scripts/bench_economics.py`` prints the figures for the deployed terms and
``scripts/simulate_market.py`` checks them against a market played out on the real contracts.

Notation (every figure is named the same way in the scripts' output):

- ``P`` a job's price, ``N`` its tasks, ``k = min(sample_tasks, N)`` the tasks an audit re-runs.
  ``P <= P_max = sigma * minVerifierStake`` (``postJob`` reverts ``PriceAboveMaximum`` above it):
  a larger workload is posted as several jobs (``split_workload``). The sampled work
  ``V = k * P / N`` is at most ``V_max = P_max / SAMPLE_VALUE_DIVISOR`` (``SampleValueAboveMaximum``):
  what a lazy pass saves (``C = 2 * c_v * V``) stays below what it risks (``rho*gamma_r*(A + S)``).
- ``f`` protocol fee, ``kappa`` collateral, ``sigma`` verifier slash, ``r`` reward share (all as
  fractions, from the terms and params).
- ``A = P * k * verifierFeeBps / (N * 10_000)`` the audit fee, ``C = 2 * c_v * k * P / N`` an
  honest verifier's compute (two reference runs at ``c_v`` times the provider's price per task),
  ``G`` its gas (lockSeed + submitVerdict), ``S = sigma * stake`` what a contradicted verifier
  loses, ``R = r * kappa * P`` the reward for failing a cheat (``rewardBps`` of the collateral).
  A verifier is drawn only with ``stake >= minVerifierStake``, so ``S >= P_max >= P``: a wrong
  verdict always costs at least the price of the job it judged.
- ``rho`` the share of submissions whose sample is wrong (cheats plus watchtowers' canaries),
  ``gamma_r`` the probability that a wrong pass is challenged (requester or watchtower),
  ``gamma_p`` the probability that a fail of honest work is challenged (its provider).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from marketplace.protocol import BPS, PANEL_SIZE, SAMPLE_VALUE_DIVISOR, Params, Terms

WEI = 10**18


@dataclass(frozen=True)
class Economy:
    """The terms and parameters that decide payoffs, as fractions and WEBI."""

    protocol_fee: float
    verifier_fee: float
    collateral: float
    verifier_slash: float
    no_show_slash: float
    reward: float
    min_task_price: float  # WEBI
    min_verifier_stake: float  # WEBI

    @classmethod
    def of(cls, terms: Terms, params: Params) -> Economy:
        return cls(terms.protocol_fee_bps / BPS, terms.verifier_fee_bps / BPS, terms.collateral_bps / BPS,
                   params.verifier_slash_bps / BPS, params.no_show_slash_bps / BPS, params.reward_bps / BPS,
                   params.min_task_price / WEI, params.min_verifier_stake / WEI)

    @property
    def max_price(self) -> float:
        """``P_max``, the most a job may cost: the least slash a drawn verifier can suffer."""
        return self.min_verifier_stake * self.verifier_slash

    @property
    def max_sample_value(self) -> float:
        """``V_max``, the most the sampled tasks of a job may be worth."""
        return self.max_price / SAMPLE_VALUE_DIVISOR


# Float slack for comparisons against the cap (500 / 0.05 and the like are not exact in binary).
_SLACK = 1e-9


def split_workload(economy: Economy, num_tasks: int, task_price: float, sample_tasks: int = 4) -> tuple[int, int]:
    """How ``num_tasks`` tasks at ``task_price`` WEBI each are posted: ``(jobs, tasks of the largest)``.

    Each job is priced at most ``P_max`` and its ``min(sample_tasks, n)`` sampled tasks are worth at
    most ``V_max``; the tasks are spread evenly, so the jobs differ by at most one task.
    ``ValueError`` when one task alone is above either cap or below the minimum price.
    """
    if task_price < economy.min_task_price * (1 - _SLACK):
        raise ValueError(f"{task_price} WEBI a task is below the minimum of {economy.min_task_price}")
    if task_price > economy.max_sample_value * (1 + _SLACK):
        raise ValueError(f"one task at {task_price} WEBI is above the sampled-value cap of "
                         f"{economy.max_sample_value} WEBI")
    per_job = math.floor(economy.max_price / task_price * (1 + _SLACK))
    if sample_tasks * task_price > economy.max_sample_value * (1 + _SLACK):
        # Fewer tasks a job than the sample: every task is re-run, so the job itself is the sample.
        per_job = min(per_job, math.floor(economy.max_sample_value / task_price * (1 + _SLACK)))
    jobs = -(-num_tasks // per_job)
    return jobs, -(-num_tasks // jobs)


@dataclass(frozen=True)
class Assumptions:
    """What the protocol cannot fix: costs, behaviour of the other side, gas prices."""

    verifier_cost: float = 0.9  # c_v: a reference run costs the verifier this share of the per-task price
    provider_cost: float = 0.9  # c: the cheating provider's honest cost as a share of the price
    wrong_rate: float = 0.05  # rho
    watch_rate: float = 0.5  # gamma_r
    provider_challenge_rate: float = 1.0  # gamma_p: the provider daemon challenges every fail of honest work
    verifier_stake: float = 1_000.0  # WEBI: a dishonest verifier's stake (the default minimum is the worst case)
    colluder_share: float = 0.3  # the colluding verifiers' share of the verifier stake
    verifier_gas: float = 0.0  # G, WEBI
    vote_gas: float = 0.0  # commitVote + revealVote, WEBI
    challenge_gas: float = 0.0  # challenge, WEBI


def gas_in_webi(gas: float, gas_price_gwei: float, webi_per_eth: float) -> float:
    """What ``gas`` costs in WEBI at ``gas_price_gwei`` and a WEBI/ETH rate."""
    return gas * gas_price_gwei * 1e-9 * webi_per_eth


def detection_probability(num_tasks: int, cheated: int, sampled: int) -> float:
    """``1 - C(N-m, k) / C(N, k)``: the chance that a sample of ``k`` distinct tasks hits one of ``m`` cheated.

    Exact hypergeometric, in logs so that N = 100,000 stays cheap and exact to float precision.
    """
    n, m, k = num_tasks, cheated, min(sampled, num_tasks)
    if m <= 0:
        return 0.0
    if n - m < k:
        return 1.0
    log_miss = (math.lgamma(n - m + 1) - math.lgamma(n - m - k + 1)) - (math.lgamma(n + 1) - math.lgamma(n - k + 1))
    return 1.0 - math.exp(log_miss)


def cheat_gain(economy: Economy, cost: float, num_tasks: int, cheated: int, sampled: int) -> float:
    """A provider's expected gain from skipping ``cheated`` tasks over doing all, in units of the price.

    It saves ``cost * m / N`` of compute; when the sample hits a skipped task (``q``) the honest
    verifier fails the job: the provider loses the payment it would have had (``1 - f``) and its
    collateral (``kappa``), and the requester is refunded.
    """
    q = detection_probability(num_tasks, cheated, sampled)
    return cost * cheated / num_tasks - q * (1 - economy.protocol_fee + economy.collateral)


@dataclass(frozen=True)
class AuditCase:
    """One audit: a job of ``num_tasks`` at ``price`` WEBI with ``sample_tasks`` sampled."""

    num_tasks: int
    price: float
    sample_tasks: int

    @property
    def sampled(self) -> int:
        return min(self.sample_tasks, self.num_tasks)

    @property
    def task_price(self) -> float:
        return self.price / self.num_tasks

    def audit_fee(self, economy: Economy) -> float:
        """``A``, as ``JobMarket.auditFee``."""
        return self.price * self.sampled * economy.verifier_fee / self.num_tasks

    def compute(self, assumptions: Assumptions) -> float:
        """``C``: two reference runs of the sample at ``c_v`` times the provider's price per task."""
        return 2 * assumptions.verifier_cost * self.sampled * self.task_price

    def check(self, economy: Economy, assumptions: Assumptions) -> None:
        """``ValueError`` for a job the contracts refuse or a verifier they never draw."""
        if self.price > economy.max_price * (1 + _SLACK):
            raise ValueError(f"a job of {self.price} WEBI is above the price cap of {economy.max_price} WEBI: "
                             "split it (split_workload)")
        if self.sampled * self.task_price > economy.max_sample_value * (1 + _SLACK):
            raise ValueError(f"the sampled tasks of a job of {self.price} WEBI are worth "
                             f"{self.sampled * self.task_price} WEBI, above the sampled-value cap of "
                             f"{economy.max_sample_value} WEBI: split it (split_workload)")
        if assumptions.verifier_stake < economy.min_verifier_stake:
            raise ValueError(f"a verifier staking {assumptions.verifier_stake} WEBI is never drawn (minimum "
                             f"{economy.min_verifier_stake} WEBI)")


STRATEGIES = ("honest", "lazy_pass", "always_fail", "colluding_requester", "colluding_cheater")


@dataclass(frozen=True)
class VerifierOutcome:
    """Expected profit of each verifier strategy on one audit (WEBI), and the figures behind it.

    ``edges`` holds each dishonest strategy's profit minus honest play of the same actors on the
    same audits (negative: dishonesty does not pay). ``honest_floor`` is the honest profit when
    nothing is ever wrong (no reward): the least an honest verifier earns.
    """

    audit_fee: float
    compute: float
    slash: float
    reward: float
    profits: dict[str, float]
    edges: dict[str, float]
    honest_floor: float
    lazy_breakeven_wrong_rate: float
    colluding_cheater_if_drawn: float
    colluding_cheater_if_drawn_bound: float


def verifier_outcome(economy: Economy, assumptions: Assumptions, case: AuditCase) -> VerifierOutcome:
    """Every verifier strategy's expected profit per audit (WEBI); see the module docstring's notation.

    honest       ``A + rho*R - C - G``: paid on every audit, plus the reward when it fails a cheat.
    lazy-pass    ``A - G - rho*gamma_r*(A + S)``: computes nothing and passes; a wrong pass that is
                 challenged is overturned, so it forfeits the fee (refunded to the requester) and
                 loses ``S``. Edge ``C - rho*(gamma_r*(A + S) + R)``: it out-earns honest work only
                 below the wrong rate ``C / (gamma_r*(A + S) + R)`` (``lazy_breakeven_wrong_rate``).
                 ``S`` follows the stake, not the price, so the sampled value is capped
                 (``V <= V_max``): without the cap, every task of a small job at the price cap
                 (``C = 2*c_v*P``) puts that rate above 1 and laziness pays.
    always-fail  ``(rho + (1-rho)(1-gamma_p))*(A + R) - (1-rho)*gamma_p*S - G``: right on the wrong
                 share; on honest work the provider challenges and the panel overturns it.
    colluding    a requester's Sybil verifier that fails the requester's honest jobs. The
    requester    coalition's flow against the requester buying the work with nobody of its own
                 auditing: unchallenged, the requester is refunded ``P`` and the Sybil earns
                 ``A + R``; challenged, the panel overturns: the requester gets the fee ``A`` back
                 and the Sybil loses ``S``. Profit ``(1-gamma_p)*(P + A + R) + gamma_p*(A - S) - G``;
                 against the Sybil auditing the same jobs honestly (``A - C - G``) the edge is
                 ``(1-gamma_p)*(P + R) - gamma_p*S + C``.
    colluding    a Sybil that passes its partner provider's full cheat, against both of them honest
    cheater      on the same job (provider paid ``(1-f-c)P``, verifier ``A - C - G``): unchallenged
                 the provider saves its compute ``cP`` and the Sybil its ``C``; challenged
                 (``gamma_r``), the panel fails the job: the provider loses payment and collateral,
                 the Sybil ``S`` and its fee. Edge if drawn: ``cP + C - gamma_r*((1-f+kappa)P + A + S)``
                 (``colluding_cheater_if_drawn``, WEBI). As ``S >= P`` for every verifier the
                 contracts draw, per unit of price it is at most ``c + C/P - gamma_r*(1-f+kappa +
                 A/P + 1)`` whatever the stake and the price (``colluding_cheater_if_drawn_bound``,
                 reached by a minimum-stake Sybil on a job priced at ``P_max``).
                 The provider commits its result before the draw, so ex ante the Sybil is drawn with
                 probability ``s`` (``colluder_share``) and an honest verifier fails the cheat
                 otherwise: edge ``s*edge_if_drawn + (1-s)*(c - (1-f+kappa))*P`` (the one in
                 ``edges``; the profit shown is the honest one plus it).
    """
    case.check(economy, assumptions)
    a, c, g = case.audit_fee(economy), case.compute(assumptions), assumptions.verifier_gas
    p, rho = case.price, assumptions.wrong_rate
    gamma_r, gamma_p = assumptions.watch_rate, assumptions.provider_challenge_rate
    s = economy.verifier_slash * assumptions.verifier_stake
    reward = economy.reward * economy.collateral * p
    loss = 1 - economy.protocol_fee + economy.collateral  # what a caught provider gives up, per unit of price
    honest = a + rho * reward - c - g
    honest_same_job = a - c - g  # honest audit of work known to be honest: no reward to hope for
    lazy = a - g - rho * gamma_r * (a + s)
    always_fail = (rho + (1 - rho) * (1 - gamma_p)) * (a + reward) - (1 - rho) * gamma_p * s - g
    colluding_requester = (1 - gamma_p) * (p + a + reward) + gamma_p * (a - s) - g
    cheat = assumptions.provider_cost * p
    if_drawn = cheat + c - gamma_r * (loss * p + a + s)
    if_drawn_bound = (cheat + c - gamma_r * (loss * p + a + p)) / p
    share = assumptions.colluder_share
    cheater_edge = share * if_drawn + (1 - share) * (cheat - loss * p)
    edges = {
        "lazy_pass": lazy - honest,
        "always_fail": always_fail - honest,
        "colluding_requester": colluding_requester - honest_same_job,
        "colluding_cheater": cheater_edge,
    }
    profits = {"honest": honest, "lazy_pass": lazy, "always_fail": always_fail,
               "colluding_requester": colluding_requester, "colluding_cheater": honest_same_job + cheater_edge}
    breakeven = c / (gamma_r * (a + s) + reward)
    return VerifierOutcome(a, c, s, reward, profits, edges, a - c - g, breakeven, if_drawn, if_drawn_bound)


@dataclass(frozen=True)
class PanelOutcome:
    """A challenge's money for the honest sides (WEBI): the challenger of a wrong verdict and a member."""

    bond: float
    challenger_reward: float
    challenger_profit: float
    member_fee: float
    member_profit: float


def panel_outcome(economy: Economy, assumptions: Assumptions, case: AuditCase) -> PanelOutcome:
    """What an honest challenger of a wrong verdict and an honest majority member get.

    The bond is ``PANEL_SIZE * A``. Overturned: the slash ``S`` pays the majority ``min(S, bond)``,
    the challenger ``r * (S - min(S, bond))`` and its bond back (``Disputes.resolveChallenge``); the
    challenger spent its own check of the sample (``C``) and the challenge's gas. A member earns
    ``bond / PANEL_SIZE`` when the panel upholds, ``min(S, bond) / PANEL_SIZE`` when it overturns
    (the smaller: the figure reported), and spends ``C`` plus commit and reveal gas.
    """
    case.check(economy, assumptions)
    a, c = case.audit_fee(economy), case.compute(assumptions)
    bond = PANEL_SIZE * a
    s = economy.verifier_slash * assumptions.verifier_stake
    panel_pay = min(s, bond)
    challenger_reward = economy.reward * (s - panel_pay)
    member_fee = min(bond, panel_pay) / PANEL_SIZE
    return PanelOutcome(bond, challenger_reward, challenger_reward - c - assumptions.challenge_gas, member_fee,
                        member_fee - c - assumptions.vote_gas)
