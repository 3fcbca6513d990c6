"""Helpers for the contract tests: accounts by address, the ledger of a receipt, a fast sender for
tests that send thousands of transactions, and a Python model of the sortition tree."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import requests
from eth_abi.abi import encode
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from web3 import HTTPProvider, Web3
from web3.contract.contract import ContractFunction
from web3.types import TxReceipt

from marketplace.chain.client import ChainClient
from marketplace.chain.deployment import DEFAULT_PARAMS, WEI
from marketplace.chain.devnet import dev_account
from marketplace.chain.market import JobMarket
from marketplace.protocol import (
    EPOCH_BLOCKS,
    PANEL_SIZE,
    SEED_HORIZON,
    SYNC_BLOCKS,
    CreditKind,
    Role,
    Verdict,
    next_sync_block,
)
from marketplace.results import MerkleTree
from tests.conftest import OUTPUT_CID, Chain


@cache
def dev(index: int) -> LocalAccount:
    """Dev account ``index`` (deriving one from the mnemonic takes milliseconds: cached)."""
    return dev_account(index)


def account(address: str) -> LocalAccount:
    """The dev account behind ``address``."""
    return next(dev(i) for i in range(20) if dev(i).address == address)


def name32(text: str) -> bytes:
    """A Solidity ``bytes32`` string literal, as the contract's bound errors carry names."""
    return text.encode().ljust(32, b"\0")


def seeds(count: int) -> list[bytes]:
    """Deterministic draw seeds: keccak256 of 0, 1, 2, ... as 32-byte words."""
    return [keccak(i.to_bytes(32, "big")) for i in range(count)]


def within_three_sigma(hits: int, n: int, p: float) -> bool:
    return abs(hits - n * p) <= 3 * math.sqrt(n * p * (1 - p))


# ───────────────────────────────────────────── epochs


def sync_room(chain: Chain, txs: int = 1) -> None:
    """Mines, if needed, so that the next ``txs`` transactions land in one sync phase (their gas
    estimates run on the latest block, each lands in the next): their weight changes apply at once."""
    offset = chain.block_number() % EPOCH_BLOCKS
    if offset + txs > SYNC_BLOCKS - 1:
        chain.mine(EPOCH_BLOCKS - offset)


def draw_room(chain: Chain, txs: int = 1) -> None:
    """Mines, if needed, so that the next ``txs`` transactions land outside a sync phase and within
    one epoch: weight changes wait for a sync, and a seed armed by the first can be drawn by the last."""
    offset = chain.block_number() % EPOCH_BLOCKS
    if offset < SYNC_BLOCKS - 1:
        chain.mine(SYNC_BLOCKS - 1 - offset)
    elif offset + txs > EPOCH_BLOCKS - 1:
        chain.mine(EPOCH_BLOCKS - offset + SYNC_BLOCKS - 1)


def ready_job(chain: Chain, requester: LocalAccount, provider: LocalAccount, **overrides: Any) -> int:
    """A submitted job whose seed block is in view, with room left in its epoch: the next
    transaction, a lockSeed, draws from it (or finds nobody eligible)."""
    draw_room(chain, 8)
    job_id = chain.submitted_job(requester, provider, **overrides)
    chain.mine(chain.market.get_job(job_id).seed_block + 1 - chain.block_number())
    return job_id


def drawing_lock(chain: Chain, job_id: int) -> TxReceipt:
    """Calls lockSeed until it draws (a seed may be re-armed first); the receipt of the draw."""
    for _ in range(4):
        seed_block = chain.market.get_job(job_id).seed_block
        if chain.block_number() <= seed_block:
            chain.mine(seed_block + 1 - chain.block_number())
        receipt = chain.market.lock_seed(chain.owner, job_id)
        if chain.emitted(receipt, "VerifierDrawn"):
            return receipt
    raise AssertionError(f"job {job_id}: no draw after 4 tries")


def next_seed_block(block: int) -> int:
    """The seed block that a call mined in ``block`` arms (``MarketBase._nextBlock``)."""
    seed = block + 1
    if seed % EPOCH_BLOCKS + 1 < SYNC_BLOCKS:
        seed += SYNC_BLOCKS - 1 - seed % EPOCH_BLOCKS
    return seed


# ───────────────────────────────────────────── the ledger


def ledger(chain: Chain, receipt: TxReceipt) -> list[tuple[str, CreditKind, int]]:
    """Every ``Credited`` event of a receipt as (account, kind, amount), in log order."""
    return [(e["account"], CreditKind(e["kind"]), e["amount"]) for e in chain.emitted(receipt, "Credited")]


def burned_in(chain: Chain, receipt: TxReceipt) -> int:
    return sum(e["amount"] for e in chain.emitted(receipt, "Burned"))


def slashes(chain: Chain, receipt: TxReceipt) -> list[tuple[str, int, int, int]]:
    """Every ``Slashed`` event as (account, role, fromStake, fromUnbonding)."""
    return [(e["account"], e["role"], e["fromStake"], e["fromUnbonding"]) for e in chain.emitted(receipt, "Slashed")]


# ───────────────────────────────────────────── results


def outputs_for(job_id: int, num_tasks: int) -> list[bytes]:
    """Distinct outputs for each task of a job, as a provider would commit to them."""
    return [f"job {job_id} task {i}".encode() for i in range(num_tasks)]


def submit_outputs(chain: Chain, provider: LocalAccount, job_id: int, num_tasks: int) -> MerkleTree:
    """Submits real per-task outputs (their Merkle root) for a claimed job; returns the tree."""
    tree = MerkleTree(outputs_for(job_id, num_tasks))
    chain.market.submit_result(provider, job_id, OUTPUT_CID, tree.root)
    return tree


# ───────────────────────────────────────────── a fast sender


class DevClient(ChainClient):
    """Sends transactions from anvil's unlocked dev accounts: one ``eth_call`` (in the next block's
    environment) to learn whether and why the call reverts, one ``eth_sendTransaction``, one receipt.

    The production client signs locally, in pure Python here (about 6 ms a transaction), and
    makes six web3 requests per transaction; the state machine and the register/exit cycles send
    thousands, so they use this one. Reverts come back as the same ``ContractError``s.
    """

    GAS = 5_000_000

    def __init__(self, rpc_url: str, decoder: Any) -> None:
        super().__init__(Web3(HTTPProvider(rpc_url)), decoder, poll_interval=0.005)
        self.rpc_url = rpc_url
        self.http = requests.Session()
        self.http.trust_env = False  # no proxy lookup in the environment on every request

    def rpc(self, method: str, params: list[Any]) -> dict[str, Any]:
        reply: dict[str, Any] = self.http.post(
            self.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, timeout=60).json()
        return reply

    def transact(self, account: LocalAccount, call: ContractFunction, *, gas: int | None = None) -> TxReceipt:
        tx: dict[str, Any] = {"from": account.address, "to": call.address, "data": call._encode_transaction_data()}
        # The check runs in the block the transaction will land in: on the pinned test clock, the
        # next block and one second later. A call near a deadline or an epoch boundary then goes
        # the same way in the check and on chain.
        latest = self.rpc("eth_getBlockByNumber", ["latest", False])["result"]
        block = {"number": hex(int(latest["number"], 16) + 1), "time": hex(int(latest["timestamp"], 16) + 1)}
        reply = self.rpc("eth_call", [tx, "latest", {}, block])
        if "error" in reply:
            raise self.decoder.decode(reply["error"].get("data"), call.fn_name)
        tx["gas"] = hex(gas or self.GAS)
        sent = self.rpc("eth_sendTransaction", [tx])
        if "error" in sent:
            raise AssertionError(f"{call.fn_name}: anvil refused the transaction: {sent['error']}")
        # Anvil mines each transaction at once, but its receipt can take a moment to appear.
        receipt = self.w3.eth.wait_for_transaction_receipt(sent["result"], timeout=30, poll_latency=0.002)
        if receipt["status"] != 1:
            raise AssertionError(f"{call.fn_name} passed its check but reverted in block {receipt['blockNumber']}")
        return receipt

    def batch(self, calls: Sequence[tuple[str, str]]) -> list[bytes]:
        """``eth_call`` of each (to, data) in one request; the raw return data of each."""
        payload = [{"jsonrpc": "2.0", "id": i, "method": "eth_call", "params": [{"to": to, "data": data}, "latest"]}
                   for i, (to, data) in enumerate(calls)]
        replies = {r["id"]: r for r in self.http.post(self.rpc_url, json=payload, timeout=60).json()}
        return [bytes.fromhex(replies[i]["result"][2:]) for i in range(len(calls))]


def fast_market(chain: Chain) -> JobMarket:
    """The chain's market behind a ``DevClient``."""
    url = str(getattr(chain.client.w3.provider, "endpoint_uri", ""))
    client = DevClient(url, chain.client.decoder)
    return JobMarket(client, client.w3.eth.contract(address=chain.market.contract.address,
                                                    abi=chain.market.contract.abi),
                     from_block=chain.market.from_block)


# ───────────────────────────────────────────── the sortition tree in Python


@dataclass
class SortitionModel:
    """``SortitionTree`` as a list of leaves in tree order: append on entry, swap-and-pop on exit.

    ``draw`` is the contract's draw: a point ``seed % remaining`` over the weights of the accounts
    not excluded, found in tree order.
    """

    leaves: list[tuple[str, int]] = field(default_factory=list)
    swaps: int = 0  # removals that moved the last leaf into a freed position

    def set(self, address: str, weight: int) -> None:
        at = next((i for i, (a, _) in enumerate(self.leaves) if a == address), None)
        if at is None:
            if weight:
                self.leaves.append((address, weight))
        elif weight:
            self.leaves[at] = (address, weight)
        else:
            last = self.leaves.pop()
            if at < len(self.leaves):
                self.leaves[at] = last
                self.swaps += 1

    def weight(self, address: str) -> int:
        return next((w for a, w in self.leaves if a == address), 0)

    @property
    def total(self) -> int:
        return sum(w for _, w in self.leaves)

    def draw(self, seed: bytes, excluded: Sequence[str] = ()) -> str:
        kept = [(a, w) for a, w in self.leaves if a not in excluded]
        remaining = sum(w for _, w in kept)
        if remaining == 0:
            return "0x0000000000000000000000000000000000000000"
        point = int.from_bytes(seed, "big") % remaining
        for address, weight in kept:
            if point < weight:
                return address
            point -= weight
        raise AssertionError("unreachable: the point is below the remaining weight")


# ───────────────────────────────────────────── disputes

SALT = b"\x5a" * 32
VOTE_WINDOW = DEFAULT_PARAMS.vote_window


def audited(chain: Chain, requester: LocalAccount, provider: LocalAccount, verifier: LocalAccount,
            verdict: Verdict, jurors: Sequence[LocalAccount] = (), **overrides) -> int:
    """A job that ``verifier`` (the only verifier at its draw) gave ``verdict``; ``jurors`` join after."""
    job_id = chain.submitted_job(requester, provider, **{"price": 20 * WEI, **overrides})
    assert chain.draw(job_id) == verifier.address
    for juror in jurors:
        chain.register(juror, Role.VERIFIER)
    chain.verdict(verifier, job_id, verdict)
    return job_id


def challenge(chain: Chain, challenger: LocalAccount, job_id: int) -> TxReceipt:
    """``challenger`` approves the market and challenges the job's verdict (pulling the bond)."""
    chain.approve(challenger)
    return chain.market.challenge(challenger, job_id)


def panel_seat_seeds(block_hash: bytes, job_id: int) -> list[bytes]:
    """The seed of each panel seat: ``keccak256(abi.encode(keccak256(abi.encode(blockhash, jobId,
    "panel")), i))`` (``Disputes.drawPanel``)."""
    seed = keccak(encode(["bytes32", "uint256", "string"], [block_hash, job_id, "panel"]))
    return [keccak(encode(["bytes32", "uint256"], [seed, i])) for i in range(PANEL_SIZE)]


def usable_seed(seed_block: int, block: int) -> bool:
    """Whether a draw mined in ``block`` can use ``seed_block`` (``MarketBase._seedHash``)."""
    return (0 < block - seed_block <= SEED_HORIZON and block // EPOCH_BLOCKS == seed_block // EPOCH_BLOCKS
            and seed_block % EPOCH_BLOCKS >= SYNC_BLOCKS - 1)


def predicted_seats(chain: Chain, job_id: int) -> list[str]:
    """The seats a panel draw from the pending seed block would fill (the seed block must exist)."""
    panel, audit = chain.market.panel_of(job_id), chain.market.audit_of(job_id)
    excluded = [chain.market.terms_of(job_id).requester, chain.market.get_job(job_id).provider, audit.verifier,
                panel.challenger]
    block_hash = bytes(chain.client.w3.eth.get_block(panel.seed_block)["hash"])
    return chain.draws(panel_seat_seeds(block_hash, job_id), excluded)


def draw_panel(chain: Chain, job_id: int, *, distinct: bool = False) -> TxReceipt:
    """Draws the panel (mining past its seed block, and again after a re-arm); the receipt of the
    draw or dismissal. With ``distinct``, seeds whose three seats would not go to three different
    verifiers are let expire (re-armed), so that the test's panel has three members."""
    for _ in range(50):
        seed_block = chain.market.panel_of(job_id).seed_block
        if chain.block_number() <= seed_block:
            chain.mine(seed_block + 1 - chain.block_number())
        if distinct and usable_seed(seed_block, chain.block_number() + 1) and \
                len(set(predicted_seats(chain, job_id))) < PANEL_SIZE:
            chain.mine(next_sync_block(chain.block_number() + 1) - chain.block_number())  # let it expire
        receipt = chain.market.draw_panel(chain.owner, job_id)
        if chain.emitted(receipt, "PanelDrawn") or chain.emitted(receipt, "ChallengeResolved"):
            return receipt
    raise AssertionError(f"job {job_id}: no panel after 50 seeds")


def seats(chain: Chain, job_id: int) -> list[str]:
    """The panel's seats in order; a verifier drawn for several holds several."""
    return list(chain.market.panel_of(job_id).members)


def members(chain: Chain, job_id: int) -> list[LocalAccount]:
    """The panel's distinct members, in the order of their first seat."""
    return [account(m) for m in dict.fromkeys(seats(chain, job_id))]


def vote(chain: Chain, job_id: int, votes: Sequence[Verdict | None], reveal: Sequence[bool] | None = None) -> None:
    """Each distinct member, in ``members`` order, commits ``votes[i]`` for all its seats (None: stays
    silent), then reveals it unless ``reveal[i]`` is False."""
    panel = members(chain, job_id)
    for member, choice in zip(panel, votes, strict=True):
        if choice is not None:
            chain.market.commit_vote(member, job_id, choice, SALT)
    if not all(v is not None for v in votes):
        chain.increase_time(VOTE_WINDOW + 1)  # the commit phase must end before anyone reveals
    for i, (member, choice) in enumerate(zip(panel, votes, strict=True)):
        if choice is not None and (reveal is None or reveal[i]):
            chain.market.reveal_vote(member, job_id, choice, SALT)


def resolve(chain: Chain, job_id: int) -> TxReceipt:
    """Resolves the challenge, first waiting out the reveal phase unless every member revealed."""
    panel = chain.market.panel_of(job_id)
    if not all(v is not Verdict.NONE for v in panel.votes):
        chain.increase_time(max(0, panel.reveal_by - chain.now()) + 1)
    return chain.market.resolve_challenge(chain.owner, job_id)
