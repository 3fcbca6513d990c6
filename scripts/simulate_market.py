"""An agent-based market on anvil with the real contracts: does every dishonest strategy lose?

    python scripts/simulate_market.py [--jobs 500] [--seed 1] [--json]

Scripted outcomes stand in for models: a job's truth is whether its provider cheated (or, for a
watchtower's canary, that its result is wrong by design). The agents:

  requesters   two honest ones, one colluding requester that owns the Sybil verifiers, and a
               watchtower posting canaries (tiny jobs whose result its own provider gets wrong)
  providers    honest ones, and cheating ones that cheat on a seeded share of their jobs
  verifiers    honest (verdict = truth), lazy (always pass, never computes), always-fail, and the
               colluding requester's Sybils (fail that requester's honest work, honest otherwise);
               each dishonest one stakes the minimum that gets it drawn (params.minVerifierStake,
               1,000 WEBI by default), and the honest ones together hold --honest-share of the
               verifier stake
  challengers  a provider challenges every fail of its honest work; a requester challenges a wrong
               pass with probability --watch-rate; the watchtower challenges every pass of a canary
  panels       each member votes by its own strategy: honest ones the truth, lazy pass,
               always-fail fail, Sybils fail for their requester (the truth otherwise)

Jobs run in rounds of --batch: post, claim, submit and lockSeed of each, verdicts, challenges, panels
(drawPanel, commitVote, revealVote, resolveChallenge), then the clock jumps past the challenge
window and the rest are finalized. Job prices stay below the price cap (256 tasks at up to
1.05 WEBI each, against minVerifierStake x verifierSlashBps = 500 WEBI). Verifier weights change
only in sync phases: the verifiers are put into the draw with syncVerifier after registering, and
every verifier a panel slashed is synced in the next sync phase of its round (by its challenger),
so that a slash below the minimum stake takes it out of the draw; a draw whose seed block lies
before a sync phase re-arms and is called again (seed_rearms counts them). Every choice comes
from random.Random(--seed), and the chain is replayable: anvil's clock is pinned (a fixed genesis
time, one second a block, ``Anvil(pinned_clock=True)``; time travel sets the next timestamp), so
block hashes, and with them every draw, repeat from run to run.

Each agent's profit is its net token flow (balance + credits + stakes, end minus start), plus,
for a requester, the value of the correct work it was given (its price: the outputs are in the
content store whatever the verdict, which is what a requester that fails honest work is after),
less its modeled costs: compute (a provider c * price for each job it computes, --provider-cost;
a verifier two reference runs of the sample at --verifier-cost * the price per task for each
verdict or vote it computes) and gas (its receipts at --gas-price-gwei and --webi-per-eth).

Per strategy, the mean profit per job in units of the mean price of the jobs it took part in
(sum of profits / sum of those prices: job sizes are drawn at random, and this keeps a strategy
that happened to get the big jobs from looking better or worse for it); verifiers per audit in
units of the mean audit fee of their audits. The colluding requester is judged with its Sybils
(the coalition, per unit of the price the requester posted) against what the same volumes earn
played honestly: an honest requester's rate on its prices plus the honest verifiers' rate on the
Sybils' audit fees.

Goals (exit code 1 when one fails):
  worst_dishonest_minus_honest < 0   every dishonest strategy ends below the honest one of its role
  honest_providers_slashed == 0      no honest provider loses collateral
  books_balance                      token.balanceOf(market) == stakes + unbonding + credits +
                                     protocol fees + live escrows + open bonds + burned, to the
                                     wei, after every round
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from eth_abi.abi import decode, encode
from eth_account.signers.local import LocalAccount
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_gas: audit secrets

from bench_gas import Secrets

from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import Anvil, deploy_devnet, dev_account, increase_time, mine
from marketplace.chain.market import JobMarket
from marketplace.protocol import (
    BPS,
    EPOCH_BLOCKS,
    LIVE_STATES,
    SYNC_BLOCKS,
    ZERO_HASH,
    Audit,
    JobRequest,
    JobState,
    JobTerms,
    Panel,
    Role,
    Verdict,
    audit_fee,
    next_sync_block,
    vote_commitment,
)

logger = logging.getLogger("simulate_market")

CID = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
MAX_UINT = 2**256 - 1
SIZES = (1, 4, 16, 64, 256)
GAS = 3_000_000  # every transaction's limit: no estimate round trip (a revert still decodes)


def _abi_type(item: dict[str, Any]) -> str:
    """The canonical ABI type of an input or output, tuples spelled out."""
    kind = str(item["type"])
    if kind.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in item["components"]) + ")" + kind[len("tuple"):]
    return kind


class Codec:
    """Calldata and return values of one contract's functions, with selectors worked out once.

    web3's ``encode_abi`` looks the function up and hashes the ABI on every call: most of this
    script's CPU time before this cache.
    """

    def __init__(self, abi: list[dict[str, Any]]) -> None:
        self.functions: dict[str, tuple[bytes, list[str], list[str]]] = {}
        for item in abi:
            if item.get("type") == "function":
                inputs = [_abi_type(i) for i in item["inputs"]]
                selector = function_signature_to_4byte_selector(f"{item['name']}({','.join(inputs)})")
                self.functions[item["name"]] = (selector, inputs, [_abi_type(o) for o in item["outputs"]])

    def encode(self, function: str, *args: Any) -> str:
        selector, inputs, _ = self.functions[function]
        return "0x" + (selector + encode(inputs, list(args))).hex()

    def decode(self, function: str, data: str) -> tuple[Any, ...]:
        return tuple(decode(self.functions[function][2], bytes.fromhex(data.removeprefix("0x"))))


class Node:
    """Raw JSON-RPC to anvil: transactions from its unlocked dev accounts, no estimate, no local signing.

    A ChainClient transaction estimates, signs in pure Python and polls for the receipt (about
    100 ms on this machine); anvil signs its own accounts' transactions and mines them at once
    (about 3 ms), which is what keeps 500 jobs within minutes. A revert is replayed as a call on
    the parent block and raised as the contract's custom error, as ChainClient does.
    """

    def __init__(self, url: str, decoder: Any) -> None:
        self.url = url
        self.decoder = decoder
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy lookup in the environment on every request

    def calls(self, calls: list[tuple[str, str]]) -> list[str]:
        """Runs views ``(to, calldata)`` in one batch request; returns their return data in order."""
        if not calls:
            return []
        batch: Any = [{"jsonrpc": "2.0", "id": i, "method": "eth_call",
                       "params": [{"to": to, "data": data}, "latest"]} for i, (to, data) in enumerate(calls)]
        replies = sorted(self.session.post(self.url, json=batch, timeout=60).json(), key=lambda r: r["id"])
        for reply in replies:
            if "error" in reply:
                raise self.decoder.decode(reply["error"].get("data"), "eth_call")
        return [str(reply["result"]) for reply in replies]

    def request(self, method: str, params: list[Any]) -> Any:
        reply = self.session.post(self.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
                                  timeout=60).json()
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def send(self, sender: str, to: str, data: str, what: str) -> dict[str, Any]:
        tx = {"from": sender, "to": to, "data": data, "gas": hex(GAS)}
        tx_hash = self.request("eth_sendTransaction", [tx])
        # anvil mines at once but may answer before the receipt is stored: wait for it, with a deadline.
        deadline = time.monotonic() + 30
        receipt: dict[str, Any] | None = self.request("eth_getTransactionReceipt", [tx_hash])
        while receipt is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: no receipt for {tx_hash} after 30 s")
            time.sleep(0.001)
            receipt = self.request("eth_getTransactionReceipt", [tx_hash])
        if receipt["status"] != "0x1":
            parent = hex(int(receipt["blockNumber"], 16) - 1)
            reply = self.session.post(self.url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_call",
                                                      "params": [{k: tx[k] for k in ("from", "to", "data")}, parent]},
                                      timeout=60).json()
            raise self.decoder.decode(reply.get("error", {}).get("data"), what)
        return receipt

    def close(self) -> None:
        self.session.close()


@dataclass
class Agent:
    name: str
    role: str  # requester, provider, verifier
    strategy: str  # honest, cheating, lazy, always_fail, colluding, watchtower
    account: LocalAccount
    stake: int = 0
    secrets: Secrets | None = None
    start_wealth: int = 0
    compute: float = 0.0  # modeled off-chain cost, WEBI
    value: float = 0.0  # requesters: the price of the correct work they were given, WEBI
    gas: int = 0
    jobs: int = 0  # posted (requesters), run (providers), audited (verifiers)
    volume: int = 0  # wei: the price of those jobs, or their audit fees (verifiers)
    votes: int = 0

    @property
    def address(self) -> str:
        return str(self.account.address)


@dataclass
class Job:
    job_id: int
    requester: Agent
    provider: Agent
    num_tasks: int
    price: int
    audit_fee: int
    wrong: bool  # the truth: a cheat or a canary
    canary: bool = False
    verifier: Agent | None = None
    verdict: Verdict = Verdict.NONE
    challenger: Agent | None = None
    panel: list[Agent] = field(default_factory=list)
    outcome: str = ""  # finalized, rejected, upheld, overturned


class ArgumentError(ValueError):
    """Command-line values the market cannot be set up with (reported as a usage error)."""


def verdict_of(agent: Agent, job: Job, colluder: Agent) -> Verdict:
    """What ``agent`` says about ``job``, as its verdict or its panel vote."""
    truth = Verdict.FAIL if job.wrong else Verdict.PASS
    if agent.strategy == "lazy":
        return Verdict.PASS
    if agent.strategy == "always_fail":
        return Verdict.FAIL
    if agent.strategy == "colluding" and job.requester is colluder:
        return Verdict.FAIL
    return truth


class Simulation:
    """The agents, the jobs and the chain; ``run`` plays the market out."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.agents: list[Agent] = []
        self.jobs: list[Job] = []
        self.books: list[bool] = []
        self.challenges: Counter[str] = Counter()
        self.over: set[int] = set()
        self.rearms = 0
        self.syncs = 0

    # ───────────────────────────────────────────── setup

    def cast(self) -> None:
        """Names every agent (the verifiers' stakes follow the deployed minimum: ``stake_verifiers``)."""
        index = iter(range(1, 1_000))

        def add(name: str, role: str, strategy: str, stake: int = 0) -> Agent:
            agent = Agent(name, role, strategy, dev_account(next(index)), stake)
            self.agents.append(agent)
            return agent

        self.requesters = [add(f"requester-{i}", "requester", "honest") for i in range(2)]
        self.colluder = add("colluding-requester", "requester", "colluding")
        self.watchtower = add("watchtower", "requester", "watchtower")
        self.canary_provider = add("watchtower-provider", "provider", "watchtower", 10_000 * WEI)
        self.providers = [add(f"provider-{i}", "provider", "honest", 10_000 * WEI) for i in range(3)]
        self.providers += [add(f"cheater-{i}", "provider", "cheating", 10_000 * WEI) for i in range(2)]
        for i in range(5):
            add(f"verifier-{i}", "verifier", "honest")
        add("lazy", "verifier", "lazy")
        add("always-fail", "verifier", "always_fail")
        for i in range(2):
            add(f"sybil-{i}", "verifier", "colluding")

    def stake_verifiers(self, min_verifier_stake: int) -> None:
        """Gives the honest verifiers ``--honest-share`` of the verifier stake.

        Each dishonest verifier stakes ``min_verifier_stake``, the least that gets it drawn (and
        the worst case: its slash is the least a wrong verdict can cost); the five honest ones
        share the rest equally, each at least the minimum too.
        """
        share = self.args.honest_share
        if not 0 < share < 1:
            raise ArgumentError(f"--honest-share {share}: must lie strictly between 0 and 1")
        dishonest = [agent for agent in self.agents if agent.role == "verifier" and agent.strategy != "honest"]
        honest = [agent for agent in self.agents if agent.role == "verifier" and agent.strategy == "honest"]
        each = int(len(dishonest) * min_verifier_stake * share / (1 - share)) // len(honest)
        if each < min_verifier_stake:
            raise ArgumentError(f"--honest-share {share}: the honest verifiers would stake {each / WEI:g} WEBI each, "
                             f"below the minimum of {min_verifier_stake / WEI:g}")
        for agent in dishonest:
            agent.stake = min_verifier_stake
        for agent in honest:
            agent.stake = each

    def setup(self, net: Any) -> None:
        self.net = net
        self.client = net.client
        self.market: JobMarket = net.protocol.market
        self.token = net.protocol.token
        self.by_address = {agent.address: agent for agent in self.agents}
        self.addresses = [net.deployer.address, *self.by_address]
        self.node = Node(net.anvil.rpc_url, net.client.decoder)
        self.codec = Codec(self.market.contract.abi)
        self.token_codec = Codec(self.token.contract.abi)
        self.next_job_id = self.market.next_job_id()
        self.claim_by = net.anvil.genesis_timestamp + 10**8  # never reached
        self.params = self.market.params()
        self.max_price = self.params.min_verifier_stake * self.params.verifier_slash_bps // BPS
        self.stake_verifiers(self.params.min_verifier_stake)
        # Raw sends with a fixed gas limit: a weight change estimated outside a sync phase and
        # mined in one would run out of the estimate's gas.
        verifiers = [agent for agent in self.agents if agent.role == "verifier"]
        for agent in self.agents:
            self.token.approve(agent.account, self.market.address, MAX_UINT)
            if agent.role == "provider":
                self.send(agent, "register", int(Role.PROVIDER), agent.stake, "")
            elif agent.role == "verifier":
                self.send(agent, "register", int(Role.VERIFIER), agent.stake, "")
                agent.secrets = Secrets(agent.account, self.client.chain_id, self.market.address)
                self.send(agent, "commitSecret", agent.secrets.commitment(0))
        self.sync([(agent, agent) for agent in verifiers])
        self.terms = self.market.terms()
        self.job_terms: dict[int, JobTerms] = {}
        for agent, wealth in zip(self.agents, self.wealths(self.agents), strict=True):
            agent.start_wealth = wealth
            agent.gas = 0  # joining is not part of the market's play

    def view(self, *calls: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Market views ``(function, *args)`` in one batch; ``("balanceOf", account)`` asks the token."""
        encoded = []
        for function, *args in calls:
            if function == "balanceOf":
                encoded.append((self.token.address, self.token_codec.encode(function, *args)))
            else:
                encoded.append((self.market.address, self.codec.encode(function, *args)))
        results = self.node.calls(encoded)
        return [(self.token_codec if call[0] == "balanceOf" else self.codec).decode(call[0], data)
                for call, data in zip(calls, results, strict=True)]

    def audit_record(self, job: Job) -> Audit:
        return Audit.from_call(self.view(("auditOf", job.job_id))[0][0])

    def states(self, jobs: list[Job]) -> list[JobState]:
        return [JobState(result[0][0]) for result in self.view(*(("getJob", job.job_id) for job in jobs))]

    def wealths(self, agents: list[Agent]) -> list[int]:
        """Tokens held, credited, staked or unbonding: what each agent owns."""
        calls: list[tuple[str, ...]] = []
        for agent in agents:
            calls += [("balanceOf", agent.address), ("credits", agent.address), ("providerStake", agent.address),
                      ("verifierStake", agent.address)]
        results = self.view(*calls)
        totals = []
        for i in range(len(agents)):
            balance, credits, provider, verifier = (r[0] for r in results[4 * i:4 * i + 4])
            totals.append(balance + credits + provider[0] + provider[4] + verifier[0] + verifier[4])
        return totals

    # ───────────────────────────────────────────── chain helpers

    def send(self, agent: Agent, function: str, *args: Any) -> dict[str, Any]:
        """``agent`` calls the market's ``function``; its gas is booked to the agent."""
        data = self.codec.encode(function, *args)
        receipt = self.node.send(agent.address, self.market.address, data, function)
        agent.gas += int(receipt["gasUsed"], 16)
        return receipt

    def travel(self, seconds: int) -> None:
        increase_time(self.client, seconds)

    def block_number(self) -> int:
        return int(self.node.request("eth_blockNumber", []), 16)

    def sync(self, pairs: list[tuple[Agent, Agent]]) -> None:
        """``caller`` applies each ``verifier``'s stake to the draw, in the next sync phase: ``(caller, verifier)``.

        A raw send lands in the block after the latest, which must be in a sync phase.
        """
        for caller, verifier in pairs:
            landing = self.block_number() + 1
            if landing % EPOCH_BLOCKS >= SYNC_BLOCKS:
                mine(self.client, next_sync_block(landing) - landing)
            self.send(caller, "syncVerifier", verifier.address)
            self.syncs += 1
        # Every verifier here holds a secret commitment: its weight is its stake, or 0 below the minimum.
        results = self.view(*(call for _, verifier in pairs
                              for call in (("verifierWeight", verifier.address), ("verifierStake", verifier.address))))
        for (_, verifier), weight, stake in zip(pairs, results[::2], results[1::2], strict=True):
            expected = stake[0][0] if stake[0][0] >= self.params.min_verifier_stake else 0
            if weight[0] != expected:
                raise RuntimeError(f"{verifier.name}: weight {weight[0]} after syncVerifier, not {expected}")

    def seed_ready(self, seed_block: int) -> None:
        """Mines until the next block is past ``seed_block`` (a draw reverts SeedNotReady before)."""
        landing = self.block_number() + 1
        if landing <= seed_block:
            mine(self.client, seed_block + 1 - landing)

    def terms_of(self, job: Job) -> tuple[object, ...]:
        return self.job_terms[job.job_id].as_tuple()

    # ───────────────────────────────────────────── one round

    def new_job(self) -> Job:
        """Posts, claims and submits one job; who and what come from the seeded generator."""
        rng = self.rng
        if rng.random() < self.args.canary_rate:
            requester, provider, num_tasks, task_price, wrong = self.watchtower, self.canary_provider, 1, 0.0, True
        else:
            requester = rng.choice([*self.requesters, self.colluder])
            provider = rng.choice(self.providers)
            num_tasks = rng.choice(SIZES)
            task_price = rng.uniform(0.0, 1.0)
            wrong = provider.strategy == "cheating" and rng.random() < self.args.cheat_rate
        minimum = self.params.min_task_price
        price = num_tasks * (minimum + int(task_price * WEI) // 1_000 * 1_000)
        if price > self.max_price:
            raise RuntimeError(f"a job of {price} wei is above the price cap of {self.max_price}")
        request = JobRequest(CID, num_tasks, price, self.claim_by, 3_600, 4)
        self.send(requester, "postJob", request.as_tuple())
        job_id, self.next_job_id = self.next_job_id, self.next_job_id + 1
        t = self.terms
        terms = JobTerms(requester.address, price, num_tasks, request.claim_by, request.exec_window,
                         request.sample_tasks, t.protocol_fee_bps, t.verifier_fee_bps, t.collateral_bps,
                         t.audit_window, t.challenge_window,
                         audit_fee(price, num_tasks, request.sample_tasks, t.verifier_fee_bps), 0, ZERO_HASH)
        if job_id == 1 and self.market.terms_of(job_id) != terms:
            raise RuntimeError(f"terms built here differ from the JobPosted event: {terms}")
        self.job_terms[job_id] = terms
        job = Job(job_id, requester, provider, num_tasks, price, terms.audit_fee, wrong,
                  canary=provider is self.canary_provider)
        self.send(provider, "claimJob", job_id, terms.as_tuple(), [])
        self.send(provider, "submitResult", job_id, CID, rng.randbytes(32))
        for agent in (requester, provider):
            agent.jobs += 1
            agent.volume += price
        if not wrong:
            provider.compute += self.args.provider_cost * price / WEI
            requester.value += price / WEI  # the outputs are in the content store, whatever the verdict
        return job

    def draw(self, job: Job) -> None:
        """lockSeed until a verifier is drawn (a seed before a sync phase re-arms: at most twice in a row)."""
        for _ in range(4):
            self.seed_ready(self.view(("getJob", job.job_id))[0][0][3])
            self.send(job.requester, "lockSeed", job.job_id, self.terms_of(job))
            audit = self.audit_record(job)
            if audit.drawn:
                job.verifier = self.by_address[to_checksum_address(audit.verifier)]
                return
            self.rearms += 1
        raise RuntimeError(f"job {job.job_id}: no verifier drawn after 4 tries")

    def reference_cost(self, job: Job) -> float:
        """Two reference runs of the sample, at --verifier-cost times the price per task (WEBI)."""
        sampled = min(4, job.num_tasks)
        return float(2 * self.args.verifier_cost * sampled * job.price / job.num_tasks / WEI)

    def computes(self, agent: Agent, job: Job) -> bool:
        """Whether ``agent`` runs the sample before it speaks (lazy and colluding ones do not bother)."""
        if agent.strategy in ("lazy", "always_fail"):
            return False
        return not (agent.strategy == "colluding" and job.requester is self.colluder)

    def verdict(self, job: Job) -> None:
        verifier = job.verifier
        assert verifier is not None and verifier.secrets is not None
        job.verdict = verdict_of(verifier, job, self.colluder)
        secret, next_hash = verifier.secrets.open(self.audit_record(job).secret)
        self.send(verifier, "submitVerdict", job.job_id, self.terms_of(job), int(job.verdict), CID, secret, next_hash)
        verifier.jobs += 1
        verifier.volume += job.audit_fee
        if self.computes(verifier, job):
            verifier.compute += self.reference_cost(job)

    def challenger_of(self, job: Job) -> Agent | None:
        """Who challenges the verdict: the harmed provider always, a requester at --watch-rate."""
        if job.verdict == Verdict.FAIL and not job.wrong:
            return job.provider
        watched = job.canary or self.rng.random() < self.args.watch_rate
        if job.verdict == Verdict.PASS and job.wrong and watched:
            return job.requester
        return None

    def challenge(self, job: Job, challenger: Agent) -> None:
        job.challenger = challenger
        self.send(challenger, "challenge", job.job_id, self.terms_of(job))

    def draw_panel(self, job: Job) -> None:
        """drawPanel until the panel is drawn (re-armed like lockSeed) or the challenge dismissed."""
        assert job.challenger is not None
        for _ in range(4):
            self.seed_ready(Panel.from_call(self.view(("panelOf", job.job_id))[0][0]).seed_block)
            self.send(job.challenger, "drawPanel", job.job_id, self.terms_of(job))
            panel = Panel.from_call(self.view(("panelOf", job.job_id))[0][0])
            if panel.size:
                job.panel = [self.by_address[to_checksum_address(member)] for member in panel.members]
                return
            if self.states([job])[0] != JobState.CHALLENGED:
                return  # nobody eligible: dismissed, settled by the first verdict
            self.rearms += 1
        raise RuntimeError(f"job {job.job_id}: no panel drawn after 4 tries")

    def vote(self, job: Job) -> None:
        """Each member commits, then reveals, its vote once for all its seats (drawn with replacement)."""
        members = list({member.address: member for member in job.panel}.values())
        salts = {member.address: self.rng.randbytes(32) for member in members}
        votes = {member.address: verdict_of(member, job, self.colluder) for member in members}
        for member in members:
            commitment = vote_commitment(job.job_id, member.address, votes[member.address], salts[member.address])
            self.send(member, "commitVote", job.job_id, commitment)
            member.votes += 1
            if self.computes(member, job):
                member.compute += self.reference_cost(job)
        for member in members:
            self.send(member, "revealVote", job.job_id, int(votes[member.address]), salts[member.address])

    def resolve(self, job: Job) -> None:
        assert job.challenger is not None
        if job.panel:
            self.send(job.challenger, "resolveChallenge", job.job_id, self.terms_of(job))
        final = self.audit_record(job).verdict
        job.outcome = "upheld" if final == job.verdict else "overturned"
        self.challenges[f"{job.outcome} ({'wrong' if job.wrong else 'honest'} work)"] += 1

    def finalize(self, job: Job) -> None:
        caller = job.provider if job.verdict != Verdict.FAIL else job.requester
        self.send(caller, "finalize", job.job_id, self.terms_of(job))
        job.outcome = "finalized" if job.verdict != Verdict.FAIL else "rejected"

    def round(self, size: int) -> None:
        jobs = []
        for _ in range(size):
            # Drawn as soon as the seed block is mined, as a keeper would: a seed left to age until
            # the next sync phase re-arms.
            job = self.new_job()
            self.draw(job)
            jobs.append(job)
        for job in jobs:
            self.verdict(job)
        challenged = []
        for job in jobs:
            challenger = self.challenger_of(job)
            if challenger is not None:
                self.challenge(job, challenger)
                challenged.append(job)
        if challenged:
            mine(self.client, 2)
            # Every panel is drawn before any resolution slashes a stake.
            for job in challenged:
                self.draw_panel(job)
            for job in challenged:
                if job.panel:
                    self.vote(job)
            for job in challenged:
                self.resolve(job)
            # A slash outside a sync phase reaches the draw with syncVerifier: the challenger,
            # who proved the fault, applies it (a verifier below the minimum stake leaves the draw).
            self.sync([(job.challenger, job.verifier) for job in challenged
                       if job.outcome == "overturned" and job.challenger is not None and job.verifier is not None])
        self.travel(self.terms.challenge_window + 1)
        for job in jobs:
            if job.challenger is None:
                self.finalize(job)
        self.jobs += jobs
        self.books.append(self.books_balance())

    # ───────────────────────────────────────────── checks and figures

    def books_balance(self) -> bool:
        """The market's exact conservation law, over every account that can hold anything.

        Only jobs not yet known to be over can hold escrow or a bond; the rest are skipped.
        """
        calls: list[tuple[str, ...]] = [("balanceOf", self.market.address), ("protocolFees",), ("burned",)]
        for address in self.addresses:
            calls += [("credits", address), ("providerStake", address), ("verifierStake", address)]
        results = self.view(*calls)
        held, fees, burned = (r[0] for r in results[:3])
        owed = fees + burned
        for i in range(len(self.addresses)):
            credits, provider, verifier = (r[0] for r in results[3 + 3 * i:6 + 3 * i])
            owed += credits + provider[0] + provider[4] + verifier[0] + verifier[4]
        live = [job for job in self.jobs if job.job_id not in self.over]
        for job, state in zip(live, self.states(live), strict=True):
            if state in LIVE_STATES:
                owed += job.price + job.audit_fee
            else:
                self.over.add(job.job_id)
            if state == JobState.CHALLENGED:
                owed += Panel.from_call(self.view(("panelOf", job.job_id))[0][0]).bond
        if held != owed:
            logger.error("books off by %d wei: market holds %d, owes %d", held - owed, held, owed)
        return bool(held == owed)

    def gas_webi(self, gas: int) -> float:
        return float(gas * self.args.gas_price_gwei * 1e-9 * self.args.webi_per_eth)

    def profit(self, agent: Agent) -> float:
        """Net token flow plus the value of correct work received, less compute and gas, WEBI.

        ``flows`` is filled at the end.
        """
        return self.flows[agent.name] + agent.value - agent.compute - self.gas_webi(agent.gas)

    def figures(self, runtime: float) -> dict[str, Any]:
        mean_price = sum(job.price for job in self.jobs) / len(self.jobs) / WEI
        self.flows = {agent.name: (wealth - agent.start_wealth) / WEI
                      for agent, wealth in zip(self.agents, self.wealths(self.agents), strict=True)}
        agents = {}
        for agent in self.agents:
            agents[agent.name] = {
                "role": agent.role, "strategy": agent.strategy, "stake": agent.stake / WEI, "jobs": agent.jobs,
                "votes": agent.votes,
                "flow": self.flows[agent.name], "value": agent.value, "compute": agent.compute,
                "gas": agent.gas, "profit": self.profit(agent),
            }

        def pooled(role: str, strategy: str) -> dict[str, Any]:
            """Profit over volume: per job x the mean price of its jobs (per audit x the mean audit fee)."""
            members = [a for a in self.agents if a.role == role and a.strategy == strategy]
            volume = sum(a.volume for a in members) / WEI
            profit = sum(self.profit(a) for a in members)
            return {"count": sum(a.jobs for a in members), "volume": volume,
                    "profit": profit, "per_job": profit / volume if volume else None}

        strategies = {f"{role}/{strategy}": pooled(role, strategy) for role, strategy in (
            ("provider", "honest"), ("provider", "cheating"), ("verifier", "honest"), ("verifier", "lazy"),
            ("verifier", "always_fail"), ("verifier", "colluding"), ("requester", "honest"))}
        # The colluding requester with its Sybils, per unit of the price it posted, against what the
        # same volumes earn when played honestly.
        sybils = [a for a in self.agents if a.strategy == "colluding" and a.role == "verifier"]
        coalition: dict[str, Any] = {"count": self.colluder.jobs, "volume": self.colluder.volume / WEI,
                     "profit": self.profit(self.colluder) + sum(self.profit(a) for a in sybils), "per_job": None}
        honest_requester, honest_verifier = strategies["requester/honest"], strategies["verifier/honest"]
        if coalition["volume"] and honest_requester["per_job"] is not None and honest_verifier["per_job"] is not None:
            coalition["per_job"] = coalition["profit"] / coalition["volume"]
            sybil_fees = sum(a.volume for a in sybils) / WEI
            coalition["baseline_per_job"] = (honest_requester["per_job"] * coalition["volume"]
                                             + honest_verifier["per_job"] * sybil_fees) / coalition["volume"]
        strategies["requester/colluding"] = coalition
        edges = {}
        for name, figure in strategies.items():
            role, strategy = name.split("/")
            honest = figure.get("baseline_per_job", strategies[f"{role}/honest"]["per_job"])
            if strategy != "honest" and figure["per_job"] is not None and honest is not None:
                edges[name] = figure["per_job"] - honest
        states = dict(zip((job.job_id for job in self.jobs), self.states(self.jobs), strict=True))
        rejected = [job for job in self.jobs if states[job.job_id] == JobState.REJECTED]
        honest_slashed = sum(1 for job in rejected if job.provider.strategy == "honest")
        honest_rejected = sum(1 for job in rejected if not job.wrong)
        watch = self.watchtower
        canaries = sum(1 for job in self.jobs if job.canary)
        worst = max(edges.values()) if edges else None
        figures: dict[str, Any] = {
            "jobs": len(self.jobs), "seed": self.args.seed, "batch": self.args.batch,
            "assumptions": {name: getattr(self.args, name) for name in (
                "honest_share", "cheat_rate", "canary_rate", "watch_rate", "provider_cost", "verifier_cost",
                "gas_price_gwei", "webi_per_eth")},
            "mean_price": mean_price,
            "wrong_share": sum(job.wrong for job in self.jobs) / len(self.jobs),
            "verdicts": dict(Counter(f"{job.verdict.name} of {'wrong' if job.wrong else 'honest'} work"
                                     for job in self.jobs)),
            "challenges": dict(self.challenges),
            "strategies": strategies,
            "edges": edges,
            "worst_dishonest_minus_honest": worst,
            "honest_providers_slashed": honest_slashed,
            "honest_work_rejected": honest_rejected,
            "watchtower_profit_per_canary": (self.profit(watch) + self.profit(self.canary_provider)) / canaries
            if canaries else None,
            "books_balance": all(self.books),
            "seed_rearms": self.rearms,
            "verifier_syncs": self.syncs,
            "burned": self.view(("burned",))[0][0] / WEI,
            "agents": agents,
            "runtime_s": round(runtime, 1),
        }
        figures["goals"] = {
            "worst_dishonest_minus_honest": {"goal": "< 0", "met": worst is not None and worst < 0},
            "honest_providers_slashed": {"goal": "== 0", "met": honest_slashed == 0},
            "books_balance": {"goal": "true", "met": figures["books_balance"]},
        }
        return figures


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    simulation = Simulation(args)
    simulation.cast()
    with Anvil(accounts=len(simulation.agents) + 1, pinned_clock=True) as anvil:
        net = deploy_devnet(anvil, fund_accounts=len(simulation.agents))
        simulation.setup(net)
        done = 0
        while done < args.jobs:
            size = min(args.batch, args.jobs - done)
            simulation.round(size)
            done += size
            logger.info("%d jobs done", done)
        try:
            return simulation.figures(time.monotonic() - started)
        finally:
            simulation.node.close()
            net.client.close()


def show(figures: dict[str, Any], console: Console) -> None:
    console.print(f"{figures['jobs']} jobs, seed {figures['seed']}, mean price {figures['mean_price']:.3f} WEBI, "
                  f"wrong share {figures['wrong_share']:.3f}; assumptions {figures['assumptions']}")
    console.print(f"verdicts {figures['verdicts']}\nchallenges {figures['challenges']}")
    agents = Table(title="agents (WEBI)")
    for column in ("agent", "role", "strategy", "stake", "jobs", "votes", "token flow", "work value", "compute",
                   "gas", "profit"):
        agents.add_column(column, justify="left" if column in ("agent", "role", "strategy") else "right")
    for name, a in figures["agents"].items():
        agents.add_row(name, a["role"], a["strategy"], f"{a['stake']:,.0f}", str(a["jobs"]), str(a["votes"]),
                       f"{a['flow']:+,.3f}", f"{a['value']:,.3f}", f"{a['compute']:,.3f}", f"{a['gas']:,}",
                       f"{a['profit']:+,.3f}")
    console.print(agents)
    strategies = Table(title="mean profit per job x the mean price of its jobs (verifiers: per audit x the mean "
                             "audit fee)")
    for column in ("role/strategy", "jobs", "volume, WEBI", "profit, WEBI", "per job", "minus honest"):
        strategies.add_column(column, justify="left" if column == "role/strategy" else "right")
    for name, s in figures["strategies"].items():
        edge = figures["edges"].get(name)
        strategies.add_row(name, str(s["count"]), f"{s['volume']:,.2f}", f"{s['profit']:+,.3f}",
                           "—" if s["per_job"] is None else f"{s['per_job']:+.4f}",
                           "" if edge is None else f"{edge:+.4f}")
    console.print(strategies)
    summary = Table(title="figures")
    for column in ("figure", "value", "goal", "met"):
        summary.add_column(column, justify="left" if column == "figure" else "right")
    for name, goal in figures["goals"].items():
        value = figures[name]
        text = f"{value:+.4f}" if isinstance(value, float) else str(value)
        summary.add_row(name, text, goal["goal"], "yes" if goal["met"] else "[red]NO[/red]")
    summary.add_row("honest_work_rejected", str(figures["honest_work_rejected"]), "", "")
    canary = figures["watchtower_profit_per_canary"]
    summary.add_row("watchtower_profit_per_canary", "—" if canary is None else f"{canary:+.4f} WEBI", "", "")
    summary.add_row("burned", f"{figures['burned']:,.3f} WEBI", "", "")
    summary.add_row("seed_rearms", str(figures["seed_rearms"]), "", "")
    summary.add_row("verifier_syncs", str(figures["verifier_syncs"]), "", "")
    summary.add_row("runtime", f"{figures['runtime_s']} s", "", "")
    console.print(summary)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--batch", type=int, default=25, help="jobs per round (default 25)")
    parser.add_argument("--honest-share", type=float, default=0.7, help="honest verifiers' share of the stake")
    parser.add_argument("--cheat-rate", type=float, default=0.3, help="share of a cheating provider's jobs it cheats")
    parser.add_argument("--canary-rate", type=float, default=0.05, help="share of jobs that are watchtower canaries")
    parser.add_argument("--watch-rate", type=float, default=0.5, help="chance a requester challenges a wrong pass")
    parser.add_argument("--provider-cost", type=float, default=0.9, help="a provider's compute, x the price")
    parser.add_argument("--verifier-cost", type=float, default=0.9, help="a reference run, x the price per task")
    parser.add_argument("--gas-price-gwei", type=float, default=0.01)
    parser.add_argument("--webi-per-eth", type=float, default=1_000.0)
    parser.add_argument("-v", "--verbose", action="store_true", help="log each round")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
    try:
        figures = run(args)
    except ArgumentError as exc:
        parser.error(str(exc))
    if args.json:
        json.dump(figures, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        show(figures, Console(width=max(Console().width, 140)))
    missed = [name for name, goal in figures["goals"].items() if not goal["met"]]
    for name in missed:
        print(f"goal missed: {name} = {figures[name]} (goal {figures['goals'][name]['goal']})", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
