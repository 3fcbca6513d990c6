"""``marketplace.Client``: what a requester does, for scripts and notebooks (``webi job`` uses it too).

    client = Client.connect("http://127.0.0.1:8545", "http://127.0.0.1:8000", account)
    job_id = client.post_job("embed", "./my-model", ["hello", "world"], price_wei=10 * WEI)
    client.wait(job_id)  # submitted, audited (verdict), then final after the challenge window
    outputs = client.results(job_id)  # every output checked against the on-chain root

The client trusts neither the store nor any server: uploads are hashed locally (the CID is
computed here), and results are accepted only when every output's Merkle leaf rebuilds the root
the provider committed on-chain.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.address import is_address, to_checksum_address

from marketplace.chain.client import ChainClient
from marketplace.chain.deployment import Deployment, Protocol, connect_protocol, protocol_abis
from marketplace.errors import CidError, ConfigError, ContentError, WebiError
from marketplace.jobspec import MAX_TASKS, JobSpec, Parameters, TaskType, inputs_manifest, parse_inputs
from marketplace.protocol import TERMINAL_STATES, ZERO_HASH, Allowlist, JobRequest, JobState, Verdict
from marketplace.results import MerkleTree, parse_output_manifest
from marketplace.storage import ContentStore, open_store
from marketplace.storage.cid import Cid
from marketplace.storage.importer import Progress

MAX_OUTPUT_MANIFEST = 1024**3
_SUBMITTED_OR_LATER = frozenset({JobState.SUBMITTED, JobState.AUDITED, JobState.CHALLENGED, JobState.FINALIZED,
                                 JobState.REJECTED})


class ResultMismatchError(WebiError):
    """The outputs in the store do not rebuild the root the provider committed on-chain."""


class JobTimeoutError(WebiError, TimeoutError):
    """A job did not reach the awaited state in time (it may still: nothing was changed)."""


@dataclass(frozen=True)
class JobInfo:
    """A job as the chain sees it now."""

    job_id: int
    state: JobState
    requester: str
    provider: str | None
    spec_cid: str
    price: int
    num_tasks: int
    output_cid: str | None
    result_root: str | None
    audit_fee: int = 0
    verifier: str | None = None  # the drawn verifier, once drawn
    verdict: Verdict = Verdict.NONE  # provisional while audited, final once settled
    deadline: int | None = None  # the verdict's deadline once drawn; the end of the challenge window once audited

    def as_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "state": self.state.name.lower(),
            "requester": self.requester,
            "provider": self.provider,
            "spec_cid": self.spec_cid,
            "price": str(self.price),
            "audit_fee": str(self.audit_fee),
            "num_tasks": self.num_tasks,
            "output_cid": self.output_cid,
            "result_root": self.result_root,
            "verifier": self.verifier,
            "verdict": None if self.verdict == Verdict.NONE else self.verdict.name.lower(),
            "deadline": self.deadline,
        }


class Client:
    """A requester's view of one deployment: the chain, a content store and (to write) an account."""

    def __init__(self, protocol: Protocol, store: ContentStore, account: LocalAccount | None = None) -> None:
        self.protocol = protocol
        self.store = store
        self.account = account
        self._submitted: dict[int, Any] = {}  # ResultSubmitted arguments by job

    @classmethod
    def connect(
        cls,
        rpc_url: str,
        store: str,
        account: LocalAccount | None = None,
        *,
        deployments_dir: Path | None = None,
        store_token: str | None = None,
    ) -> Client:
        """``store``: a directory, a Kubo RPC or WEBI node URL, or ``gateway+URL`` (read-only)."""
        chain = ChainClient.connect(rpc_url, protocol_abis())
        protocol = connect_protocol(chain, Deployment.load(chain.chain_id, deployments_dir))
        return cls(protocol, open_store(store, token=store_token), account)

    def close(self) -> None:
        self.store.close()
        self.protocol.market.client.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ───────────────────────────────────────────── requests

    def upload_model(self, model: str | Path, progress: Progress | None = None) -> str:
        """A model bundle directory uploaded (its CID), or ``model`` itself when it is already a CID."""
        path = Path(model)
        if path.is_dir():
            return str(self.store.add_path(path, recursive=True, progress=progress).cid)
        try:
            return str(Cid.parse(str(model)))
        except CidError:
            raise ConfigError(f"--model {model}: neither a model directory nor a CID") from None

    def post_job(
        self,
        task: str | TaskType,
        model: str | Path,
        inputs: list[str] | Path,
        *,
        price_wei: int,
        sample_tasks: int = 4,
        claim_window_s: int = 3_600,
        exec_window_s: int = 1_800,
        parameters: dict[str, int] | None = None,
        min_provider_stake: int = 0,
        allowlist: list[str] | None = None,
        progress: Progress | None = None,
        permit: bool = True,
    ) -> int:
        """Uploads the model (when a folder), the inputs and the spec, escrows the price plus the
        audit fee, and posts. Every job is audited: ``sample_tasks`` of its tasks are re-executed.

        ``inputs`` is a list of texts or a JSONL file (one ``{"text": ...}`` or string per line); it is
        checked before anything is uploaded or spent. ``min_provider_stake`` (wei) and ``allowlist``
        (provider addresses, named in the spec, committed on-chain as a Merkle root) limit who may
        claim. The request accepts exactly the protocol terms in force now: if the owner changes
        them before the post is mined, it reverts (``TermsOutOfBounds``) instead of costing more.
        """
        account = self._signer()
        texts = parse_inputs(inputs.read_bytes(), _count_lines(inputs)) if isinstance(inputs, Path) else list(inputs)
        if not texts or len(texts) > MAX_TASKS:
            raise ConfigError(f"a job has 1 to {MAX_TASKS} inputs, not {len(texts)}")
        members = _allowlist(allowlist) if allowlist else None
        spec = JobSpec(
            task=TaskType(task),
            model=self.upload_model(model, progress),
            num_tasks=len(texts),
            inputs=str(self.store.add_bytes(inputs_manifest(texts)).cid),
            parameters=Parameters(**(parameters or {})),
            allowlist=members.accounts if members else (),
        )
        spec_cid = str(self.store.add_bytes(spec.to_bytes()).cid)
        market, token = self.protocol.market, self.protocol.token
        terms = market.terms()
        request = JobRequest(
            spec_cid,
            len(texts),
            price_wei,
            market.client.timestamp() + claim_window_s,
            exec_window_s,
            min(sample_tasks, len(texts)),
            min_provider_stake=min_provider_stake,
            allowlist_root=members.root if members else ZERO_HASH,
            max_protocol_fee_bps=terms.protocol_fee_bps,
            max_verifier_fee_bps=terms.verifier_fee_bps,
            min_collateral_bps=terms.collateral_bps,
        )
        escrow = request.escrow(terms)
        if permit:
            signature = token.sign_permit(account, market.address, escrow, market.client.timestamp() + 3_600)
            return market.post_job_with_permit(account, request, signature)
        if token.allowance(account.address, market.address) < escrow:
            token.approve(account, market.address, escrow)
        return market.post_job(account, request)

    def cancel(self, job_id: int) -> None:
        self.protocol.market.cancel_job(self._signer(), job_id)

    def withdraw(self) -> int:
        """Withdraws the account's credits (refunds, rewards); returns how much."""
        account = self._signer()
        amount = self.protocol.market.credits(account.address)
        if amount:
            self.protocol.market.withdraw(account)
        return amount

    # ───────────────────────────────────────────── reading

    def status(self, job_id: int) -> JobInfo:
        market = self.protocol.market
        posted = market.posted(job_id)
        status = market.get_job(job_id)
        submitted = self._submitted.get(job_id)
        if submitted is None and status.state in _SUBMITTED_OR_LATER:
            logs = market.contract.events.ResultSubmitted().get_logs(
                from_block=market.from_block, argument_filters={"jobId": job_id}
            )
            if logs:  # a job is submitted once: what it committed never changes, so polling looks it up once
                submitted = self._submitted[job_id] = logs[-1]["args"]
        audit = market.audit_of(job_id) if status.state in _SUBMITTED_OR_LATER else None
        provider = status.provider if int(status.provider, 16) else None
        return JobInfo(
            job_id,
            status.state,
            posted.terms.requester,
            provider,
            posted.spec_cid,
            posted.terms.price,
            posted.terms.num_tasks,
            submitted["outputCid"] if submitted else None,
            "0x" + bytes(submitted["resultRoot"]).hex() if submitted else None,
            posted.terms.audit_fee,
            audit.verifier if audit is not None and audit.drawn else None,
            audit.verdict if audit is not None else Verdict.NONE,
            audit.deadline if audit is not None and audit.deadline else None,
        )

    def wait(
        self,
        job_id: int,
        *,
        until: frozenset[JobState] = TERMINAL_STATES,
        timeout: float = 600.0,
        interval: float = 1.0,
        on_change: Callable[[JobInfo], None] | None = None,
    ) -> JobInfo:
        """Polls until the job reaches one of ``until`` (default: settled); ``JobTimeoutError`` after ``timeout``.

        ``on_change`` sees each new state, verifier draw and verdict.
        """
        deadline = time.monotonic() + timeout
        last: tuple[JobState, str | None, Verdict] | None = None
        while True:
            info = self.status(job_id)
            now = (info.state, info.verifier, info.verdict)  # a draw is news too, within Submitted
            if now != last and on_change is not None:
                on_change(info)
            last = now
            if info.state in until:
                return info
            if time.monotonic() > deadline:
                raise JobTimeoutError(f"job {job_id} still {info.state.name.lower()} after {timeout:g} s")
            time.sleep(interval)

    def results(self, job_id: int) -> list[dict[str, Any]]:
        """The job's outputs in task order, each checked against the root committed on-chain."""
        info = self.status(job_id)
        if info.output_cid is None or info.result_root is None:
            raise ConfigError(f"job {job_id} is {info.state.name.lower()}: no results submitted")
        data = self.store.read_bytes(Cid.parse(info.output_cid), limit=MAX_OUTPUT_MANIFEST)
        outputs = parse_output_manifest(data, info.num_tasks)
        root = "0x" + MerkleTree(outputs).root.hex()
        if root != info.result_root:
            raise ResultMismatchError(
                f"job {job_id}: the outputs at {info.output_cid} give root {root}, "
                f"but the provider committed {info.result_root}"
            )
        try:
            return [json.loads(output) for output in outputs]
        except json.JSONDecodeError as error:
            raise ContentError(f"job {job_id}: an output is not JSON ({error})") from None

    def _signer(self) -> LocalAccount:
        if self.account is None:
            raise ConfigError("this needs an account: pass --wallet (see `webi wallet list`)")
        return self.account


def _allowlist(addresses: list[str]) -> Allowlist:
    """The allowlist of ``addresses`` (checksummed, each once); ``ConfigError`` for one that is not an address."""
    members: dict[str, None] = {}
    for address in addresses:
        if not is_address(address):
            raise ConfigError(f"allowlist: {address!r} is not an address")
        members[to_checksum_address(address)] = None
    return Allowlist(tuple(sorted(members)))


def _count_lines(path: Path) -> int:
    return sum(1 for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip())


__all__ = ["Client", "JobInfo", "JobTimeoutError", "ResultMismatchError"]
