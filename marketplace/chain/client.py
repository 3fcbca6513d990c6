"""A chain connection that sends transactions from local accounts and speaks WEBI's errors.

Transactions are signed locally with eth-account (no node-side accounts), gas is estimated first
so that a revert is reported before anything is sent, and a revert of any kind comes back as a
``ContractError`` naming the custom error and its arguments.

Every request has a deadline (``timeout``, 10 s by default): a node that accepts the connection
and never answers becomes a ``ChainUnreachableError`` within it, instead of web3's five retries of
a 30 s read. Receipts keep their own, longer wait (``receipt_timeout``), polled with short requests.
A sender without the ETH for gas is told how much it has and about how much it needs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, cast

import requests
from eth_account.signers.local import LocalAccount
from eth_typing import ABIEvent
from eth_utils.abi import event_abi_to_log_topic
from web3 import HTTPProvider, Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError, TimeExhausted, Web3RPCError
from web3.types import BlockIdentifier, EventData, RPCEndpoint, TxParams, TxReceipt

from marketplace.chain.artifacts import Artifact
from marketplace.chain.library_errors import needs_gas_money
from marketplace.chain.revert import ErrorDecoder
from marketplace.errors import ChainError, ChainUnreachableError, ContractError, TransactionError
from marketplace.units import webi

logger = logging.getLogger(__name__)

# Estimates are exact for the state they ran on; the margin absorbs state that moves in between.
GAS_MARGIN = 1.25
# Seconds a read may take before the chain counts as not answering; a healthy node answers in milliseconds.
DEFAULT_RPC_TIMEOUT = 10.0
# How long a daemon (provider, verifier) that starts while its chain is unreachable waits for it: an RPC
# endpoint or a devnet that restarts comes back within this; a wrong URL is reported after it.
DAEMON_CONNECT_WAIT_S = 120.0
# What a sender without ETH is told a transaction needs when even an estimate cannot run.
_FALLBACK_GAS = 300_000


class TimedHTTPProvider(HTTPProvider):
    """An HTTP provider whose every request fails as a ``ChainUnreachableError`` after ``timeout`` seconds.

    web3 would retry a timed-out read five times with backoff (minutes for a hung node); here no request
    is retried: a caller that polls (the indexer, the daemons) retries on its own schedule.
    """

    def __init__(self, rpc_url: str, timeout: float, session: requests.Session) -> None:
        # eth_chainId alone is cached: web3's validation asks for it before every call and transaction (about
        # half of a daemon's requests), and a chain's id never changes. Nothing that a reorg can change is cached.
        super().__init__(rpc_url, request_kwargs={"timeout": timeout}, session=session,
                         exception_retry_configuration=None, cache_allowed_requests=True,
                         cacheable_requests={RPCEndpoint("eth_chainId")})
        self.timeout = timeout

    def _make_request(self, method: RPCEndpoint, request_data: bytes) -> bytes:
        try:
            return super()._make_request(method, request_data)
        except requests.Timeout as exc:
            raise ChainUnreachableError(
                f"the chain at {self.endpoint_uri} did not answer within {self.timeout:g} s ({method}): "
                "check that the node is running and not stuck") from exc
        except (requests.ConnectionError, OSError) as exc:
            raise ChainUnreachableError(f"cannot reach the chain at {self.endpoint_uri}: {exc}") from exc


class ChainClient:
    """One JSON-RPC endpoint, with local signing and decoded reverts.

    ``decoder`` must know the custom errors of every contract this client calls.
    """

    def __init__(self, w3: Web3, decoder: ErrorDecoder, *, receipt_timeout: float = 120.0,
                 poll_interval: float = 0.05) -> None:
        self.w3 = w3
        self.decoder = decoder
        self.receipt_timeout = receipt_timeout
        self.poll_interval = poll_interval
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._chain_id: int | None = None
        self._session: requests.Session | None = None

    @classmethod
    def connect(cls, rpc_url: str, abis: Iterable[list[dict[str, Any]]], *, timeout: float = DEFAULT_RPC_TIMEOUT,
                wait_s: float = 0.0, **kwargs: Any) -> ChainClient:
        """Connects to ``rpc_url`` and checks that it answers within ``timeout`` seconds (as must every
        later request); ``close()`` releases the connection.

        ``wait_s`` keeps trying an unreachable chain for that long (0.5 s, doubling to 5 s between tries, each
        logged) before giving up: a daemon started while its RPC endpoint restarts waits for it instead of
        exiting. A chain that answers with an error is not waited for.
        """
        deadline = time.monotonic() + wait_s
        pause = 0.5
        while True:
            try:
                return cls._connect(rpc_url, abis, timeout, **kwargs)
            except ChainUnreachableError as error:
                if time.monotonic() + pause > deadline:
                    raise
                logger.warning("%s; trying again in %.1f s", error, pause)
                time.sleep(pause)  # backing off before the next try
                pause = min(5.0, pause * 2)

    @classmethod
    def _connect(cls, rpc_url: str, abis: Iterable[list[dict[str, Any]]], timeout: float,
                 **kwargs: Any) -> ChainClient:
        session = requests.Session()
        w3 = Web3(TimedHTTPProvider(rpc_url, timeout, session))
        client = cls(w3, ErrorDecoder(abis), **kwargs)
        client._session = session
        try:
            client._chain_id = w3.eth.chain_id
        except ChainError:
            session.close()
            raise
        except (requests.RequestException, OSError) as exc:
            session.close()
            raise ChainUnreachableError(f"cannot reach the chain at {rpc_url}: {exc}") from exc
        except Web3RPCError as exc:
            session.close()
            raise ChainError(f"the chain at {rpc_url} answered with an error: {exc}") from exc
        return client

    def close(self) -> None:
        """Closes the HTTP session ``connect`` opened (a client built around another ``Web3`` keeps it)."""
        if self._session is not None:
            self._session.close()

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = self.w3.eth.chain_id
        return self._chain_id

    def timestamp(self) -> int:
        """Unix time of the latest block: the clock the contracts see."""
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def contract(self, artifact: Artifact, address: str) -> Contract:
        return self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=artifact.abi)

    # ───────────────────────────────────────────── transactions

    def deploy(self, account: LocalAccount, artifact: Artifact, *args: Any) -> tuple[Contract, TxReceipt]:
        """Deploys ``artifact`` with constructor ``args``; returns the contract and the receipt."""
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        tx = factory.constructor(*args).build_transaction(self._base_tx(account))
        receipt = self._send(account, tx, f"deploy {artifact.name}")
        address = receipt["contractAddress"]
        if address is None:
            raise TransactionError(f"deploying {artifact.name} gave no contract address",
                                   receipt["transactionHash"].to_0x_hex())
        return self.contract(artifact, address), receipt

    def transact(self, account: LocalAccount, call: ContractFunction, *, gas: int | None = None) -> TxReceipt:
        """Sends ``call`` from ``account`` and waits for its receipt.

        Raises ContractError when the contract refuses (before sending, from the gas estimate,
        or after mining), TransactionError when the node refuses or no receipt comes in time.
        """
        with self._lock_for(account.address):
            tx = self._base_tx(account)
            try:
                # Estimated on the pending block, where the transaction will run: a call can cost
                # more there than on the latest block (a verifier weight change that only applies
                # in a sync phase, when the next block starts one).
                tx["gas"] = gas if gas is not None else int(
                    call.estimate_gas(cast(TxParams, tx), block_identifier="pending") * GAS_MARGIN)
                built = cast(dict[str, Any], call.build_transaction(cast(TxParams, tx)))
            except (ContractCustomError, ContractLogicError) as exc:
                raise self.decoder.decode(_revert_data(exc), call.fn_name) from exc
            except Web3RPCError as exc:
                if needs_gas_money(exc):
                    raise self._no_gas_money(account, tx, call) from exc
                raise TransactionError(f"{call.fn_name}: the node refused the gas estimate: {exc}") from exc
            return self._send(account, built, call.fn_name)

    def call(self, call: ContractFunction, block: int | str = "latest") -> Any:
        """Runs a view; a revert becomes a ContractError."""
        try:
            return call.call(block_identifier=cast(BlockIdentifier, block))
        except (ContractCustomError, ContractLogicError) as exc:
            raise self.decoder.decode(_revert_data(exc), call.fn_name) from exc

    def _lock_for(self, address: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(address, threading.Lock())

    def _base_tx(self, account: LocalAccount) -> dict[str, Any]:
        latest = self.w3.eth.get_block("latest")
        tx: dict[str, Any] = {
            "from": account.address,
            "nonce": self.w3.eth.get_transaction_count(account.address, "pending"),
            "chainId": self.chain_id,
        }
        base_fee = latest.get("baseFeePerGas")
        if base_fee is None:
            tx["gasPrice"] = self.w3.eth.gas_price
        else:
            priority = self.w3.eth.max_priority_fee
            tx["maxPriorityFeePerGas"] = priority
            tx["maxFeePerGas"] = 2 * base_fee + priority
        return tx

    def _send(self, account: LocalAccount, tx: dict[str, Any], what: str) -> TxReceipt:
        signed = account.sign_transaction(tx)
        try:
            tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        except Web3RPCError as exc:
            if needs_gas_money(exc):
                raise self._no_gas_money(account, tx) from exc
            raise TransactionError(f"{what}: the node refused the transaction: {exc}") from exc
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(
                tx_hash, timeout=self.receipt_timeout, poll_latency=self.poll_interval)
        except TimeExhausted as exc:
            raise TransactionError(f"{what}: no receipt after {self.receipt_timeout:.0f} s",
                                   tx_hash.to_0x_hex()) from exc
        if receipt["status"] != 1:
            raise self._explain_failure(tx, receipt, what)
        logger.debug("%s mined in block %d, gas %d", what, receipt["blockNumber"], receipt["gasUsed"])
        return receipt

    def _no_gas_money(self, account: LocalAccount, tx: dict[str, Any],
                      call: ContractFunction | None = None) -> TransactionError:
        """How much ETH ``account`` has and about how much the transaction needs: the gas estimate run
        as if the account were funded (a state override), else a typical call's gas."""
        balance = int(self.w3.eth.get_balance(account.address))
        gas = tx.get("gas")
        if gas is None and call is not None:
            funded = {account.address: {"balance": hex(10**24)}}
            try:
                gas = int(call.estimate_gas(cast(TxParams, tx), block_identifier="pending",
                                            state_override=funded) * GAS_MARGIN)  # type: ignore[arg-type]
            except (ContractCustomError, ContractLogicError, Web3RPCError, ValueError):
                gas = None
        price = int(tx.get("maxFeePerGas") or tx.get("gasPrice") or self.w3.eth.gas_price)
        need = int(gas or _FALLBACK_GAS) * price + int(tx.get("value", 0))
        return TransactionError(
            f"{account.address} has {webi(balance, 6)} ETH; this transaction needs about {webi(need, 6)} ETH for "
            "gas: fund it with ETH (on the devnet, send some from one of the dev accounts `webi devnet up` funds)")

    def _explain_failure(self, tx: dict[str, Any], receipt: TxReceipt, what: str) -> ChainError:
        """Replays a reverted transaction as a call on the parent state to recover its error."""
        tx_hash = receipt["transactionHash"].to_0x_hex()
        replay = {k: tx[k] for k in ("from", "to", "data", "value") if k in tx}
        try:
            self.w3.eth.call(replay, block_identifier=receipt["blockNumber"] - 1)  # type: ignore[arg-type]
        except (ContractCustomError, ContractLogicError) as exc:
            error = self.decoder.decode(_revert_data(exc), what)
            error.add_note(f"tx {tx_hash}")
            return error
        return TransactionError(f"{what} reverted on-chain", tx_hash)

    # ───────────────────────────────────────────── events

    def events(self, contract: Contract, from_block: int, to_block: int | None = None, *,
               chunk: int = 5_000) -> Iterator[EventData]:
        """Every event of ``contract`` in [from_block, to_block], decoded, in chain order.

        Scans in chunks so that public RPC endpoints with a block-range cap still answer.
        """
        by_topic = {event_abi_to_log_topic(cast(ABIEvent, abi)): contract.events[str(abi.get("name"))]()
                    for abi in contract.abi if abi.get("type") == "event"}
        last = self.w3.eth.block_number if to_block is None else to_block
        start = from_block
        while start <= last:
            end = min(start + chunk - 1, last)
            logs = self.w3.eth.get_logs({"address": contract.address, "fromBlock": start, "toBlock": end})
            for log in logs:
                event = by_topic.get(bytes(log["topics"][0])) if log["topics"] else None
                if event is not None:
                    yield event.process_log(log)
            start = end + 1


def _revert_data(exc: ContractLogicError) -> str | None:
    data = exc.data
    if isinstance(data, dict):  # some nodes nest it
        data = data.get("data")
    return data if isinstance(data, str) else None


__all__ = ["ChainClient", "ContractError"]
