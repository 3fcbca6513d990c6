"""Typed access to the deployed JobMarket: one method per contract function, dataclasses out."""

from __future__ import annotations

from collections.abc import Sequence
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
    Panel,
    Params,
    Role,
    Stake,
    Terms,
    Verdict,
    vote_commitment,
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

    def update_metadata(self, account: LocalAccount, role: Role, metadata_cid: str) -> TxReceipt:
        """Points ``account``'s registration in ``role`` to a new metadata document (``MetadataUpdated``)."""
        return self.client.transact(account, self.contract.functions.updateMetadata(int(role), metadata_cid))

    def add_stake(self, account: LocalAccount, role: Role, amount: int) -> TxReceipt:
        return self.client.transact(account, self.contract.functions.addStake(int(role), amount))

    def request_unstake(self, account: LocalAccount, role: Role, amount: int) -> TxReceipt:
        return self.client.transact(account, self.contract.functions.requestUnstake(int(role), amount))

    def withdraw_stake(self, account: LocalAccount, role: Role) -> TxReceipt:
        return self.client.transact(account, self.contract.functions.withdrawStake(int(role)))

    def sync_verifier(self, account: LocalAccount, verifier: str) -> TxReceipt:
        """Applies ``verifier``'s stake and secret to the draw (only in a sync phase)."""
        return self.client.transact(account, self.contract.functions.syncVerifier(verifier))

    def commit_secret(self, account: LocalAccount, secret_hash: bytes) -> TxReceipt:
        """Publishes a verifier's next audit-secret commitment (it is drawn only while it has one)."""
        return self.client.transact(account, self.contract.functions.commitSecret(secret_hash))

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

    def post_job_group(self, account: LocalAccount, requests: Sequence[JobRequest],
                       group_id: int = 0) -> tuple[int, list[int]]:
        """Posts ``requests`` as shards of one group in one transaction (the escrows' sum must be allowed);
        ``group_id`` 0 starts a group, else re-posts into it. Returns the group id and the shards' job ids."""
        call = self.contract.functions.postJobGroup([request.as_tuple() for request in requests], group_id)
        receipt = self.client.transact(account, call)
        self.posted_job_id(receipt)  # remembers every shard's JobPosted
        groups = self.contract.events.GroupPosted().process_receipt(receipt, errors=DISCARD)
        if not groups:
            raise TransactionError("the transaction posted no group", receipt["transactionHash"].to_0x_hex())
        args = groups[0]["args"]
        first = int(args["firstJobId"])
        return int(args["groupId"]), list(range(first, first + int(args["shards"])))

    def cancel_job(self, account: LocalAccount, job_id: int, terms: JobTerms | None = None) -> TxReceipt:
        return self.client.transact(account, self.contract.functions.cancelJob(job_id, self._t(job_id, terms)))

    def claim_job(self, account: LocalAccount, job_id: int, terms: JobTerms | None = None,
                  proof: Sequence[bytes] = ()) -> TxReceipt:
        """Claims a job; ``proof`` places the caller in the job's allowlist, when it has one."""
        call = self.contract.functions.claimJob(job_id, self._t(job_id, terms), list(proof))
        return self.client.transact(account, call)

    def reclaim_expired(self, account: LocalAccount, job_id: int, terms: JobTerms | None = None) -> TxReceipt:
        call = self.contract.functions.reclaimExpired(job_id, self._t(job_id, terms))
        return self.client.transact(account, call)

    def release_key(self, account: LocalAccount, job_id: int, to: str, wrapped_key: bytes,
                    terms: JobTerms | None = None) -> TxReceipt:
        """Publishes a confidential job's key wrapped to ``to`` (requester to claimant, provider to verifier)."""
        call = self.contract.functions.releaseKey(job_id, self._t(job_id, terms), to, wrapped_key)
        return self.client.transact(account, call)

    def release_claim(self, account: LocalAccount, job_id: int, terms: JobTerms | None = None) -> TxReceipt:
        """Gives an Open job's claim back, unslashed, when its key did not arrive or was unusable."""
        return self.client.transact(account, self.contract.functions.releaseClaim(job_id, self._t(job_id, terms)))

    def submit_result(self, account: LocalAccount, job_id: int, output_cid: str, result_root: bytes) -> TxReceipt:
        return self.client.transact(account, self.contract.functions.submitResult(job_id, output_cid, result_root))

    def lock_seed(self, account: LocalAccount, job_id: int, terms: JobTerms | None = None) -> TxReceipt:
        """Draws the job's verifier (or re-arms a seed block gone out of view)."""
        return self.client.transact(account, self.contract.functions.lockSeed(job_id, self._t(job_id, terms)))

    def demand_reveal(self, account: LocalAccount, job_id: int, secret: bytes, next_secret_hash: bytes,
                      terms: JobTerms | None = None) -> TxReceipt:
        call = self.contract.functions.demandReveal(job_id, self._t(job_id, terms), secret, next_secret_hash)
        return self.client.transact(account, call)

    def reveal_outputs(self, account: LocalAccount, job_id: int, outputs: Sequence[bytes],
                       proofs: Sequence[Sequence[bytes]], terms: JobTerms | None = None) -> TxReceipt:
        call = self.contract.functions.revealOutputs(
            job_id, self._t(job_id, terms), list(outputs), [list(p) for p in proofs])
        return self.client.transact(account, call)

    def fail_unrevealed(self, account: LocalAccount, job_id: int, terms: JobTerms | None = None) -> TxReceipt:
        return self.client.transact(account, self.contract.functions.failUnrevealed(job_id, self._t(job_id, terms)))

    def submit_verdict(self, account: LocalAccount, job_id: int, verdict: Verdict | bool, evidence_cid: str,
                       secret: bytes, next_secret_hash: bytes, terms: JobTerms | None = None) -> TxReceipt:
        """The drawn verifier's verdict; it reveals ``secret`` and commits to the next one."""
        call = self.contract.functions.submitVerdict(
            job_id, self._t(job_id, terms), int(Verdict.of(verdict)), evidence_cid, secret, next_secret_hash)
        return self.client.transact(account, call)

    def redraw_verifier(self, account: LocalAccount, job_id: int, terms: JobTerms | None = None) -> TxReceipt:
        return self.client.transact(account, self.contract.functions.redrawVerifier(job_id, self._t(job_id, terms)))

    def challenge(self, account: LocalAccount, job_id: int, terms: JobTerms | None = None) -> TxReceipt:
        """Challenges a provisional verdict (the bond allowance must exist)."""
        return self.client.transact(account, self.contract.functions.challenge(job_id, self._t(job_id, terms)))

    def draw_panel(self, account: LocalAccount, job_id: int, terms: JobTerms | None = None) -> TxReceipt:
        return self.client.transact(account, self.contract.functions.drawPanel(job_id, self._t(job_id, terms)))

    def commit_vote(self, account: LocalAccount, job_id: int, vote: Verdict, salt: bytes) -> TxReceipt:
        """Commits a panel vote; keep ``salt`` to reveal it."""
        commitment = vote_commitment(job_id, account.address, vote, salt)
        return self.client.transact(account, self.contract.functions.commitVote(job_id, commitment))

    def reveal_vote(self, account: LocalAccount, job_id: int, vote: Verdict, salt: bytes) -> TxReceipt:
        return self.client.transact(account, self.contract.functions.revealVote(job_id, int(vote), salt))

    def resolve_challenge(self, account: LocalAccount, job_id: int, terms: JobTerms | None = None) -> TxReceipt:
        call = self.contract.functions.resolveChallenge(job_id, self._t(job_id, terms))
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

    def audit_of(self, job_id: int) -> Audit:
        """The job's audit record: drawn verifier, deadlines, verdict, seed and secret or sample seed."""
        return Audit.from_call(tuple(self.client.call(self.contract.functions.auditOf(job_id))))

    def panel_of(self, job_id: int) -> Panel:
        return Panel.from_call(tuple(self.client.call(self.contract.functions.panelOf(job_id))))

    def result_root(self, job_id: int) -> bytes:
        return bytes(self.client.call(self.contract.functions.resultRoot(job_id)))

    def latest_submission(self, job_id: int) -> tuple[str, bytes] | None:
        """The output CID and result root of the job's latest ``ResultSubmitted`` log (None before any).
        After a reorg this is the submission the chain holds now, not the one a daemon journaled."""
        logs = self.contract.events.ResultSubmitted().get_logs(from_block=self.from_block,
                                                               argument_filters={"jobId": job_id})
        if not logs:
            return None
        latest = logs[-1]["args"]
        return str(latest["outputCid"]), bytes(latest["resultRoot"])

    def sampled_tasks(self, job_id: int, terms: JobTerms | None = None) -> list[int]:
        """The tasks the audit re-executes; the contract knows them once the secret is revealed."""
        call = self.contract.functions.sampledTasks(job_id, self._t(job_id, terms))
        return [int(i) for i in self.client.call(call)]

    def sample_of(self, sample_seed: bytes, num_tasks: int, sample_tasks: int) -> list[int]:
        call = self.contract.functions.sampleOf(sample_seed, num_tasks, sample_tasks)
        return [int(i) for i in self.client.call(call)]

    def draw_verifier(self, seed: bytes, excluded: Sequence[str] = ()) -> str:
        """The verifier a draw with ``seed`` would pick now (a view of the draw ``lock_seed`` makes)."""
        return str(self.client.call(self.contract.functions.drawVerifier(seed, list(excluded))))

    def audit_fee(self, price: int, num_tasks: int, sample_tasks: int, verifier_fee_bps: int) -> int:
        return int(self.client.call(self.contract.functions.auditFee(price, num_tasks, sample_tasks,
                                                                     verifier_fee_bps)))

    def credits(self, account: str) -> int:
        return int(self.client.call(self.contract.functions.credits(account)))

    def provider_stake(self, account: str) -> Stake:
        return Stake(*self.client.call(self.contract.functions.providerStake(account)))

    def verifier_stake(self, account: str) -> Stake:
        return Stake(*self.client.call(self.contract.functions.verifierStake(account)))

    def verifier_weight(self, account: str) -> int:
        return int(self.client.call(self.contract.functions.verifierWeight(account)))

    def total_verifier_weight(self) -> int:
        return int(self.client.call(self.contract.functions.totalVerifierWeight()))

    def verifier_count(self) -> int:
        return int(self.client.call(self.contract.functions.verifierCount()))

    def secret_of(self, verifier: str) -> bytes:
        return bytes(self.client.call(self.contract.functions.secretOf(verifier)))

    def burned(self) -> int:
        return int(self.client.call(self.contract.functions.burned()))

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
