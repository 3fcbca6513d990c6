"""Typed access to the deployed JobMarket: one method per contract function, dataclasses out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from marketplace.chain.client import ChainClient
from marketplace.chain.token import PermitSignature
from marketplace.errors import ContractError, TransactionError
from marketplace.protocol import (
    Audit,
    JobRequest,
    JobStatus,
    JobTerms,
    Params,
    Role,
    Stake,
    Terms,
    VerifierEntry,
)


@dataclass(frozen=True)
class PostedJob:
    """What a ``JobPosted`` event says about a job; it never changes."""

    job_id: int
    spec_cid: str
    terms: JobTerms

    @classmethod
    def from_event(cls, args: Any) -> PostedJob:
        return cls(int(args["jobId"]), str(args["specCid"]), JobTerms.from_event(args["terms"]))


class JobMarket:
    """The JobMarket contract; every write is a transaction from a local account."""

    def __init__(self, client: ChainClient, contract: Contract, *, from_block: int = 0) -> None:
        self.client = client
        self.contract = contract
        self.from_block = from_block
        self._posted: dict[int, PostedJob] = {}

    @property
    def address(self) -> str:
        return str(self.contract.address)

    # ───────────────────────────────────────────── staking

    def register(self, account: LocalAccount, role: Role, amount: int, metadata_cid: str = "") -> TxReceipt:
        return self.client.transact(account, self.contract.functions.register(int(role), amount, metadata_cid))

    def add_stake(self, account: LocalAccount, role: Role, amount: int) -> TxReceipt:
        return self.client.transact(account, self.contract.functions.addStake(int(role), amount))

    def request_unstake(self, account: LocalAccount, role: Role, amount: int) -> TxReceipt:
        return self.client.transact(account, self.contract.functions.requestUnstake(int(role), amount))

    def withdraw_stake(self, account: LocalAccount, role: Role) -> TxReceipt:
        return self.client.transact(account, self.contract.functions.withdrawStake(int(role)))

    # ───────────────────────────────────────────── jobs

    def post_job(self, account: LocalAccount, request: JobRequest) -> int:
        """Posts a job (the escrow allowance must exist); returns its id."""
        receipt = self.client.transact(account, self.contract.functions.postJob(request.as_tuple()))
        return self.posted_job_id(receipt)

    def post_job_with_permit(self, account: LocalAccount, request: JobRequest, permit: PermitSignature) -> int:
        """Posts a job, approving the escrow with a signed permit in the same transaction."""
        call = self.contract.functions.postJobWithPermit(
            request.as_tuple(), permit.deadline, permit.v, permit.r, permit.s)
        return self.posted_job_id(self.client.transact(account, call))

    def cancel_job(self, account: LocalAccount, job_id: int, terms: JobTerms | None = None) -> TxReceipt:
        return self.client.transact(account, self.contract.functions.cancelJob(job_id, self._t(job_id, terms)))

    def claim_job(self, account: LocalAccount, job_id: int, terms: JobTerms | None = None) -> TxReceipt:
        return self.client.transact(account, self.contract.functions.claimJob(job_id, self._t(job_id, terms)))

    def reclaim_expired(self, account: LocalAccount, job_id: int, terms: JobTerms | None = None) -> TxReceipt:
        call = self.contract.functions.reclaimExpired(job_id, self._t(job_id, terms))
        return self.client.transact(account, call)

    def submit_result(self, account: LocalAccount, job_id: int, output_cid: str, result_root: bytes) -> TxReceipt:
        return self.client.transact(account, self.contract.functions.submitResult(job_id, output_cid, result_root))

    def lock_seed(self, account: LocalAccount, job_id: int) -> TxReceipt:
        return self.client.transact(account, self.contract.functions.lockSeed(job_id))

    def submit_verdict(self, account: LocalAccount, job_id: int, passed: bool, evidence_cid: str,
                       terms: JobTerms | None = None) -> TxReceipt:
        call = self.contract.functions.submitVerdict(job_id, self._t(job_id, terms), passed, evidence_cid)
        return self.client.transact(account, call)

    def finalize(self, account: LocalAccount, job_id: int, terms: JobTerms | None = None) -> TxReceipt:
        return self.client.transact(account, self.contract.functions.finalize(job_id, self._t(job_id, terms)))

    def withdraw_protocol_fees(self, account: LocalAccount) -> TxReceipt:
        return self.client.transact(account, self.contract.functions.withdrawProtocolFees())

    def withdraw(self, account: LocalAccount) -> TxReceipt:
        return self.client.transact(account, self.contract.functions.withdraw())

    # ───────────────────────────────────────────── views

    def get_job(self, job_id: int) -> JobStatus:
        return JobStatus.from_call(tuple(self.client.call(self.contract.functions.getJob(job_id))))

    def posted(self, job_id: int) -> PostedJob:
        """A job's ``JobPosted`` event: its spec CID and terms (cached: they never change)."""
        if job_id not in self._posted:
            events = self.contract.events.JobPosted().get_logs(
                from_block=self.from_block, argument_filters={"jobId": job_id})
            if not events:
                raise ContractError("JobNotFound", {"jobId": job_id}, "posted")
            self._posted[job_id] = PostedJob.from_event(events[0]["args"])
        return self._posted[job_id]

    def remember(self, event_args: Any) -> PostedJob:
        """Caches a ``JobPosted`` event read elsewhere (an event scan), so ``posted`` needs no lookup."""
        job = PostedJob.from_event(event_args)
        self._posted[job.job_id] = job
        return job

    def terms_of(self, job_id: int) -> JobTerms:
        """The terms a job was posted with."""
        return self.posted(job_id).terms

    def spec_cid(self, job_id: int) -> str:
        return self.posted(job_id).spec_cid

    def audit_of(self, job_id: int, terms: JobTerms | None = None) -> Audit:
        call = self.contract.functions.auditOf(job_id, self._t(job_id, terms))
        audited, verifier, seed = self.client.call(call)
        return Audit(bool(audited), str(verifier), bytes(seed))

    def sampled_tasks(self, job_id: int, terms: JobTerms | None = None) -> list[int]:
        call = self.contract.functions.sampledTasks(job_id, self._t(job_id, terms))
        return [int(i) for i in self.client.call(call)]

    def credits(self, account: str) -> int:
        return int(self.client.call(self.contract.functions.credits(account)))

    def provider_stake(self, account: str) -> Stake:
        return Stake(*self.client.call(self.contract.functions.providerStake(account)))

    def verifier_stake(self, account: str) -> Stake:
        return Stake(*self.client.call(self.contract.functions.verifierStake(account)))

    def verifier_entries(self) -> int:
        return int(self.client.call(self.contract.functions.verifierEntries()))

    def verifier_list(self) -> list[VerifierEntry]:
        """The whole append-only verifier list, for deriving assignments off-chain."""
        return [VerifierEntry(*self.client.call(self.contract.functions.verifierAt(i)))
                for i in range(self.verifier_entries())]

    def terms(self) -> Terms:
        """The protocol terms that new jobs commit to."""
        return Terms(*self.client.call(self.contract.functions.terms()))

    def protocol_fees(self) -> int:
        return int(self.client.call(self.contract.functions.protocolFees()))

    def params(self) -> Params:
        return Params(*self.client.call(self.contract.functions.params()))

    def treasury(self) -> str:
        return str(self.client.call(self.contract.functions.treasury()))

    def next_job_id(self) -> int:
        return int(self.client.call(self.contract.functions.nextJobId()))

    def posted_job_id(self, receipt: TxReceipt) -> int:
        """The first job a transaction posted; every job it posted is remembered for later calls."""
        events = self.contract.events.JobPosted().process_receipt(receipt, errors=DISCARD)
        if not events:
            raise TransactionError("the transaction posted no job", receipt["transactionHash"].to_0x_hex())
        for event in events:
            posted = PostedJob.from_event(event["args"])
            self._posted[posted.job_id] = posted
        return int(events[0]["args"]["jobId"])

    def _t(self, job_id: int, terms: JobTerms | None) -> tuple[object, ...]:
        return (terms or self.terms_of(job_id)).as_tuple()
