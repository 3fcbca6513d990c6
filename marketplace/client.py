"""``marketplace.Client``: what a requester does, for scripts and notebooks (``webi job`` uses it too).

    client = Client.connect("http://127.0.0.1:8545", "http://127.0.0.1:8000", account)
    job_id = client.post_job("embed", "./my-model", ["hello", "world"], price_wei=WEI)
    client.wait(job_id, until=TERMINAL_STATES | {JobState.AUDITED})  # the verdict, provisional for an hour
    outputs = client.results(job_id)  # every output checked against the on-chain root
    report = client.check(job_id, 3)  # 3 random tasks re-executed here, as the verifier does
    if not report.passed:
        client.challenge(job_id)  # within the challenge window: a panel re-decides
    client.wait(job_id)  # settled

The client trusts neither the store nor any server: uploads are hashed locally (the CID is
computed here), and results are accepted only when every output's Merkle leaf rebuilds the root
the provider committed on-chain.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.address import is_address, to_checksum_address

from marketplace.chain.client import ChainClient
from marketplace.chain.deployment import Deployment, Protocol, connect_protocol, protocol_abis
from marketplace.confidential_post import Sealing, seal_post, sealed_model, sealing_problems
from marketplace.errors import CidError, ConfigError, ContentError, ContractError, JobSpecError, WebiError
from marketplace.groups.requests import GroupRequests
from marketplace.home import WebiHome
from marketplace.job_challenge import ChallengeError, check_challenge
from marketplace.job_facts import posted_at, read_facts
from marketplace.job_inputs import allowlist_of, read_inputs
from marketplace.job_reclaim import ReclaimError, ReclaimInfo, check_reclaim
from marketplace.job_standing import RejectedResultsError, Standing, result_standing
from marketplace.job_timeline import JobEvent, JobTimeline
from marketplace.job_views import ChallengeInfo, JobInfo, JobQuote, RequestRefusedError
from marketplace.job_waits import JobWait, job_wait
from marketplace.jobspec import (
    JobSpec,
    TaskType,
    inputs_manifest,
    parse_parameters,
    parse_spec,
)
from marketplace.key_release import KeyRelease, release_keys
from marketplace.output_json import OutputRefusedError, parse_output
from marketplace.preflight import JobDraft, Preflight, PreflightError, preflight
from marketplace.protocol import (
    TERMINAL_STATES,
    ZERO_HASH,
    JobRequest,
    JobState,
    JobStatus,
    Verdict,
    audit_fee,
)
from marketplace.provider_offers import ProviderOffer, provider_offers
from marketplace.requester_keys import RequesterKeys, job_key_of, read_job_spec
from marketplace.results import MerkleTree, parse_output_manifest
from marketplace.sealed.envelope import open_sealed, seal
from marketplace.sealed.keys import JobKey
from marketplace.spot_check import CheckReport, TaskChecker, choose_tasks, load_checker, plaintext_job
from marketplace.storage import ContentStore, open_store
from marketplace.storage.cid import Cid
from marketplace.storage.importer import Progress
from marketplace.units import webi

MAX_OUTPUT_MANIFEST = 1024**3
MAX_SPEC_BYTES = 64 * 1024
_SUBMITTED_OR_LATER = frozenset({JobState.SUBMITTED, JobState.AUDITED, JobState.CHALLENGED, JobState.FINALIZED,
                                 JobState.REJECTED})
_CHALLENGED_OR_LATER = frozenset({JobState.CHALLENGED, JobState.FINALIZED, JobState.REJECTED})


class ResultMismatchError(WebiError):
    """The outputs in the store do not rebuild the root the provider committed on-chain."""


class JobTimeoutError(WebiError, TimeoutError):
    """A job did not reach the awaited state in time (it may still: nothing was changed); ``wait`` says what it
    waits for."""

    def __init__(self, message: str, wait: JobWait | None = None) -> None:
        super().__init__(message)
        self.wait = wait


class Client:
    """A requester's view of one deployment: the chain, a content store and (to write) an account.

    ``checker`` re-executes tasks for ``check`` (default: the verifier's, through the ``webi.checkers``
    entry point, with models cached under ``cache_dir``); tests and notebooks may pass their own.
    ``keys`` (the account's party keys, ``RequesterKeys``) seal confidential jobs and open their results.
    """

    def __init__(self, protocol: Protocol, store: ContentStore, account: LocalAccount | None = None, *,
                 checker: TaskChecker | None = None, cache_dir: Path | None = None,
                 keys: RequesterKeys | None = None) -> None:
        self.protocol = protocol
        self.store = store
        self.account = account
        self.keys = keys
        self.checker = checker
        self.cache_dir = cache_dir or WebiHome.from_env().root / "check-cache"
        self._submitted: dict[int, Any] = {}  # ResultSubmitted arguments by job
        self._posted_at: dict[int, int] = {}  # the posting block's timestamp by job
        self.groups = GroupRequests(self)  # job groups: post, status, wait (with retries), merged results

    @classmethod
    def connect(
        cls,
        rpc_url: str,
        store: str,
        account: LocalAccount | None = None,
        *,
        deployments_dir: Path | None = None,
        store_token: str | None = None,
        cache_dir: Path | None = None,
        keys: RequesterKeys | None = None,
    ) -> Client:
        """``store``: a directory, a Kubo RPC or WEBI node URL, or ``gateway+URL`` (read-only)."""
        chain = ChainClient.connect(rpc_url, protocol_abis())
        protocol = connect_protocol(chain, Deployment.load(chain.chain_id, deployments_dir))
        return cls(protocol, open_store(store, token=store_token), account, cache_dir=cache_dir, keys=keys)

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

    def quote(
        self,
        price_wei: int,
        num_tasks: int,
        sample_tasks: int = 4,
        *,
        max_protocol_fee_bps: int | None = None,
        max_verifier_fee_bps: int | None = None,
        min_collateral_bps: int | None = None,
    ) -> JobQuote:
        """What a job costs under the terms in force now, and the bounds its request will hold them to
        (by default exactly those terms, so a change of terms before the post is mined makes it revert
        instead of costing more). ``RequestRefusedError`` when the contract would refuse the job."""
        market = self.protocol.market
        try:
            market.params().check_request(price_wei, num_tasks, sample_tasks)
        except ValueError as error:
            raise RequestRefusedError(str(error)) from None
        terms = market.terms()
        bounds = (
            terms.protocol_fee_bps if max_protocol_fee_bps is None else max_protocol_fee_bps,
            terms.verifier_fee_bps if max_verifier_fee_bps is None else max_verifier_fee_bps,
            terms.collateral_bps if min_collateral_bps is None else min_collateral_bps,
        )
        refusals = []
        if terms.protocol_fee_bps > bounds[0]:
            refusals.append(f"the protocol fee is {terms.protocol_fee_bps} bps, above --max-protocol-fee-bps "
                            f"{bounds[0]}")
        if terms.verifier_fee_bps > bounds[1]:
            refusals.append(f"the verifier fee is {terms.verifier_fee_bps} bps, above --max-verifier-fee-bps "
                            f"{bounds[1]}")
        if terms.collateral_bps < bounds[2]:
            refusals.append(f"the collateral is {terms.collateral_bps} bps of the price, below --min-collateral-bps "
                            f"{bounds[2]}")
        if refusals:
            raise RequestRefusedError("the terms in force are outside your bounds: " + "; ".join(refusals))
        sampled = min(sample_tasks, num_tasks)
        return JobQuote(num_tasks, sampled, price_wei, audit_fee(price_wei, num_tasks, sampled, terms.verifier_fee_bps),
                        terms, *bounds)

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
        max_protocol_fee_bps: int | None = None,
        max_verifier_fee_bps: int | None = None,
        min_collateral_bps: int | None = None,
        progress: Progress | None = None,
        permit: bool = True,
        check_providers: bool = True,
        on_checked: Callable[[Preflight], None] | None = None,
        sealing: Sealing | None = None,
    ) -> int:
        """Uploads the model (when a folder), the inputs and the spec, escrows the price plus the
        audit fee, and posts. Every job is audited: ``sample_tasks`` of its tasks are re-executed.

        ``inputs`` is a list of texts or a JSONL file (one ``{"text": ...}`` or string per line). Before
        anything is uploaded or spent, the job is checked as the providers and the contract will check it
        (``marketplace.preflight``: the model bundle with the providers' own function, the chain's bounds,
        the wallet's WEBI and ETH, and, unless ``check_providers`` is False, a registered provider willing
        to take it); ``PreflightError`` names every problem. ``on_checked`` sees the checks' report (the
        quote, warnings) once they pass, before the upload. ``min_provider_stake`` (wei) and ``allowlist``
        (provider addresses, named in the spec, committed on-chain as a Merkle root) limit who may claim.
        The bounds default to the terms in force now: if the owner changes them before the post is mined,
        it reverts (``TermsOutOfBounds``) instead of costing more.

        ``sealing`` makes it confidential (``confidential_post``): the inputs manifest (and, with
        ``encrypt_model``, every model file, after the checks ran on the plaintext folder) reach the store
        only as age files to a fresh job key, which the spec wraps to this account's party key (``keys``)
        and, for a Directed job, to each allowlisted provider's published key.
        """
        account = self._signer()
        sealing = sealing or Sealing()
        texts = read_inputs(inputs)
        members = allowlist_of(allowlist) if allowlist else None
        try:
            chosen = parse_parameters(dict(parameters or {}))
        except JobSpecError as error:
            raise PreflightError([str(error)]) from None
        draft = JobDraft(TaskType(task), str(model), len(texts), price_wei, sample_tasks, claim_window_s,
                         exec_window_s, chosen, min_provider_stake, members.accounts if members else (),
                         max_protocol_fee_bps, max_verifier_fee_bps, min_collateral_bps)
        refused = sealing_problems(sealing, str(model), draft.allowlist, exec_window_s)
        if refused:
            raise PreflightError(refused)
        checked = self._preflight(draft, account.address, check_providers)
        envelope = None
        if sealing.confidential:
            envelope = seal_post(self.protocol.market, self.store, account.address, self._keys().current(), sealing,
                                 draft.allowlist)
        if on_checked is not None:
            on_checked(checked)
        quote = checked.quote
        if quote is None:  # unreachable: a refused quote is one of the problems raised above
            raise PreflightError(["the terms in force could not be read"])
        manifest = inputs_manifest(texts)
        with sealed_model(model, envelope) as upload:
            model_cid = self.upload_model(upload, progress)
        spec = JobSpec(
            task=draft.task,
            model=model_cid,
            num_tasks=len(texts),
            inputs=str(self.store.add_bytes(
                manifest if envelope is None else seal(manifest, envelope, "the inputs manifest")).cid),
            parameters=chosen,
            allowlist=draft.allowlist,
            confidential=envelope,
        )
        spec_cid = str(self.store.add_bytes(spec.to_bytes()).cid)
        market, token = self.protocol.market, self.protocol.token
        request = JobRequest(
            spec_cid,
            len(texts),
            price_wei,
            market.client.timestamp() + claim_window_s,
            exec_window_s,
            quote.sample_tasks,
            min_provider_stake=min_provider_stake,
            allowlist_root=members.root if members else ZERO_HASH,
            max_protocol_fee_bps=quote.max_protocol_fee_bps,
            max_verifier_fee_bps=quote.max_verifier_fee_bps,
            min_collateral_bps=quote.min_collateral_bps,
            confidentiality=sealing.confidentiality,
            key_window=sealing.key_window(),
        )
        escrow = request.escrow(quote.terms)
        if permit:
            signature = token.sign_permit(account, market.address, escrow, market.client.timestamp() + 3_600)
            return market.post_job_with_permit(account, request, signature)
        if token.allowance(account.address, market.address) < escrow:
            token.approve(account, market.address, escrow)
        return market.post_job(account, request)

    def _preflight(self, draft: JobDraft, requester: str, check_providers: bool) -> Preflight:
        """``preflight`` with the quote first (a job the contract refuses costs nothing and says which bound);
        ``PreflightError`` naming every problem found."""
        quote, refused = None, []
        try:
            quote = self.quote(draft.price_wei, draft.num_tasks, draft.sample_tasks,
                               max_protocol_fee_bps=draft.max_protocol_fee_bps,
                               max_verifier_fee_bps=draft.max_verifier_fee_bps,
                               min_collateral_bps=draft.min_collateral_bps)
        except RequestRefusedError as error:
            refused.append(str(error))
        checked = preflight(self.protocol, self.store, draft, requester, quote=quote, check_providers=check_providers)
        checked.problems[:0] = refused
        checked.raise_problems()
        return checked

    def cancel(self, job_id: int) -> None:
        self.protocol.market.cancel_job(self._signer(), job_id)

    def withdraw(self) -> int:
        """Withdraws the account's credits (refunds, rewards); returns how much."""
        account = self._signer()
        amount = self.protocol.market.credits(account.address)
        if amount:
            self.protocol.market.withdraw(account)
        return amount

    def challenge(self, job_id: int) -> ChallengeInfo:
        """Challenges the job's provisional verdict (a requester's right against a pass or inconclusive),
        approving the bond (``3 · auditFee``) first when the allowance is short.

        Checked first from the chain's views (``job_challenge``), so that a challenge the contract would
        refuse spends nothing and says why (``ChallengeError``); a refusal racing the checks (the window
        closing in between) is translated from the contract's error the same way.
        """
        account = self._signer()
        market, token = self.protocol.market, self.protocol.token
        job = check_challenge(market, job_id, account.address)
        bond = job.terms.bond
        balance = token.balance_of(account.address)
        if balance < bond:
            raise ChallengeError(f"job {job_id}: the challenge bond is {webi(bond)} WEBI and {account.address} holds "
                                 f"{webi(balance)} WEBI")
        approved = token.allowance(account.address, market.address) < bond
        if approved:
            token.approve(account, market.address, bond)
        try:
            receipt = market.challenge(account, job_id, job.terms)
        except ContractError as error:
            raise job.explain(error) from None
        panel = market.panel_of(job_id)
        return ChallengeInfo(job_id, account.address, job.audit.verdict, panel.bond, panel.seed_block,
                             market.params().vote_window, approved, receipt["transactionHash"].to_0x_hex())

    # ───────────────────────────────────────────── reading

    def status(self, job_id: int) -> JobInfo:
        """The job as the chain sees it now: state, parties, commitment, audit, challenge and panel."""
        return self._snapshot(job_id)[0]

    def waiting_for(self, job_id: int, *, offers: Sequence[ProviderOffer] | None = None) -> JobWait:
        """What the job waits for now (``JobWait.line()`` says it in words): a claim (with the reasons registered
        providers publish for not taking it; ``offers`` saves reading them again), a result, the seed block,
        a verdict, a reveal, the end of the challenge window, the panel, or someone to make the next call."""
        info, status = self._snapshot(job_id)
        return self._wait_of(info, status, offers)

    def jobs(self, requester: str) -> list[JobInfo]:
        """Every job ``requester`` posted on this deployment (its ``JobPosted`` events), oldest first, as now."""
        market = self.protocol.market
        if not is_address(requester):
            raise ConfigError(f"{requester!r} is not an address")
        events = market.contract.events.JobPosted().get_logs(
            from_block=market.from_block, argument_filters={"requester": to_checksum_address(requester)})
        ids = [market.remember(event["args"]).job_id for event in events]
        return [self.status(job_id) for job_id in sorted(ids)]

    def reclaim(self, job_id: int) -> ReclaimInfo:
        """Reclaims the job's expired claim (``reclaimExpired``: anyone may, once the result deadline passed):
        the provider's collateral is slashed, ``rewardBps`` of it credited to this account, and the job is open
        again. Checked first from the chain's views, so that a reclaim the contract would refuse spends nothing
        and says why (``ReclaimError``)."""
        account = self._signer()
        market = self.protocol.market
        job = check_reclaim(market, job_id)
        try:
            receipt = market.reclaim_expired(account, job_id, job.terms)
        except ContractError as error:
            raise job.explain(error) from None
        return job.outcome(market, receipt, account.address)

    def _wait_of(self, info: JobInfo, status: JobStatus, offers: Sequence[ProviderOffer] | None) -> JobWait:
        market = self.protocol.market
        posted = None
        if info.state == JobState.OPEN:
            if info.job_id not in self._posted_at:
                self._posted_at[info.job_id] = posted_at(market, info.job_id)
            posted = self._posted_at[info.job_id]
        return job_wait(info, read_facts(market, self.store, info, status, posted=posted, offers=offers))

    def _snapshot(self, job_id: int) -> tuple[JobInfo, JobStatus]:
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
        panel = market.panel_of(job_id) if status.state in _CHALLENGED_OR_LATER else None
        challenged = panel is not None and int(panel.challenger, 16) != 0
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
            reveal_by=audit.reveal_by if audit is not None and audit.reveal_pending else None,
            challenger=panel.challenger if panel is not None and challenged else None,
            bond=panel.bond if panel is not None and challenged else 0,
            panel_seats=panel.size if panel is not None else 0,
            panel_committed=sum(1 for c in panel.commits if c != ZERO_HASH) if panel is not None else 0,
            panel_revealed=sum(1 for v in panel.votes if v != Verdict.NONE) if panel is not None else 0,
        ), status

    def timeline(self, job_id: int, from_block: int | None = None) -> JobTimeline:
        """A follower of the job's events (``poll`` returns those not seen yet), from the deployment's block."""
        return JobTimeline(self.protocol.market, job_id, from_block)

    def wait(
        self,
        job_id: int,
        *,
        until: frozenset[JobState] = TERMINAL_STATES,
        timeout: float = 600.0,
        interval: float = 1.0,
        on_change: Callable[[JobInfo], None] | None = None,
        on_event: Callable[[JobEvent], None] | None = None,
        on_wait: Callable[[JobWait], None] | None = None,
        on_release: Callable[[KeyRelease], None] | None = None,
    ) -> JobInfo:
        """Polls until the job reaches one of ``until`` (default: settled); ``JobTimeoutError`` after ``timeout``,
        saying what the job still waits for.

        ``on_change`` sees each new state, verifier draw, verdict, reveal demand, challenge and panel vote
        count; ``on_event`` sees every event of the job once, in chain order, from its posting on (the
        history first, then each as it is mined), stamped with its block and time; ``on_wait`` sees what the
        job waits for (``waiting_for``) each time that changes. The providers an open job's wait names are
        read once per call.

        With ``on_release`` (and this client's account and keys), an Open confidential job's key is released to
        each claimant as it claims (``key_release``); ``on_release`` sees each release, or why one was not made
        (once per claimant).
        """
        deadline = time.monotonic() + timeout
        reported: set[tuple[int, str]] = set()
        timeline = self.timeline(job_id) if on_event is not None else None
        last: tuple[Any, ...] | None = None
        last_wait: JobWait | None = None
        offers: list[ProviderOffer] | None = None
        while True:
            info, status = self._snapshot(job_id)
            if on_wait is not None:
                if info.state == JobState.OPEN and offers is None:
                    offers = provider_offers(self.protocol.market, self.store)
                waiting = self._wait_of(info, status, offers)
                if waiting != last_wait:
                    on_wait(waiting)
                last_wait = waiting
            if on_release is not None and info.state == JobState.CLAIMED:
                for release in release_keys(self.protocol.market, self.store, self._signer(), self._keys().all(),
                                            [job_id]):
                    if release.released or (job_id, release.provider) not in reported:
                        on_release(release)
                    reported.add((job_id, release.provider))
            if timeline is not None and on_event is not None:
                for event in timeline.poll():  # the head is read after the state: every event behind it is shown
                    on_event(event)
            now = (info.state, info.verifier, info.verdict, info.reveal_by, info.challenger, info.panel_seats,
                   info.panel_committed, info.panel_revealed)
            if now != last and on_change is not None:
                on_change(info)
            last = now
            if info.state in until:
                return info
            if time.monotonic() > deadline:
                waiting = self._wait_of(info, status, offers)
                raise JobTimeoutError(f"job {job_id} still {info.state.name.lower()} after {timeout:g} s: "
                                      f"{waiting.line()}", waiting)
            time.sleep(interval)

    def results(self, job_id: int, *, force: bool = False) -> list[dict[str, Any]]:
        """The job's outputs in task order, each checked against the root committed on-chain, then parsed
        with the verifier's bounds (``output_json``): the provider chose the bytes, and an output nested
        100,000 deep would kill this process. ``ContentError`` names the first output refused and why.

        The root proves only that these are the committed outputs: a job whose audit failed (rejected, or a
        provisional fail) raises ``RejectedResultsError`` with the verdict and its evidence CID, before
        anything is downloaded, unless ``force``. ``job_standing.result_standing`` says whether they are final.
        """
        return self.results_of(self.status(job_id), force=force)

    def results_of(self, info: JobInfo, *, force: bool = False) -> list[dict[str, Any]]:
        """``results`` for a job read just now (``status``): a group's merge reads each shard once."""
        job_id = info.job_id
        standing = result_standing(self.protocol.market, info)
        if standing.standing == Standing.REJECTED and not force:
            raise RejectedResultsError(standing.refusal())
        _, outputs = self._verified_outputs(job_id, info)
        parsed = []
        for index, output in enumerate(outputs):
            try:
                parsed.append(parse_output(output))
            except OutputRefusedError as error:
                raise ContentError(f"job {job_id}: output {index} refused: {error}") from None
        return parsed

    def check(self, job_id: int, k: int, *, seed: int | None = None) -> CheckReport:
        """Re-executes ``k`` tasks of the job chosen at random with ``seed`` (reported; a fresh one when None),
        with the provider's runtime and the verifier's comparators, and compares them with the outputs
        committed on-chain (which must rebuild the root first: ``ResultMismatchError``)."""
        info, outputs = self._verified_outputs(job_id)
        used, indices = choose_tasks(info.num_tasks, k, seed)
        try:
            # Once the verdict revealed the audit's sample, check it too: a panel re-checks only those.
            audit_sample = tuple(self.protocol.market.sampled_tasks(job_id))
        except ContractError:
            audit_sample = ()  # not revealed yet
        indices = sorted(set(indices) | set(audit_sample))
        spec = parse_spec(self.store.read_bytes(Cid.parse(info.spec_cid), limit=MAX_SPEC_BYTES))
        committed = {index: outputs[index] for index in indices}
        job_key = self.job_key(job_id)
        if job_key is None:
            checker = self.checker or load_checker(self.store, self.cache_dir)
            results = checker(info.spec_cid, indices, committed)
        else:  # re-executed over the job opened into a throw-away local store
            with plaintext_job(self.store, spec, job_key) as (clear, clear_spec):
                results = (self.checker or load_checker(clear, self.cache_dir))(clear_spec, indices, committed)
        return CheckReport(job_id, spec.task.value, used, tuple(indices), tuple(results), audit_sample)

    def _verified_outputs(self, job_id: int, info: JobInfo | None = None) -> tuple[JobInfo, list[bytes]]:
        info = info or self.status(job_id)
        if info.output_cid is None or info.result_root is None:
            raise ConfigError(f"job {job_id} is {info.state.name.lower()}: no results submitted")
        data = self.store.read_bytes(Cid.parse(info.output_cid), limit=MAX_OUTPUT_MANIFEST)
        job_key = self.job_key(job_id)
        if job_key is not None:
            data = open_sealed(data, job_key, f"job {job_id}'s output manifest {info.output_cid}")
        outputs = parse_output_manifest(data, info.num_tasks)
        root = "0x" + MerkleTree(outputs).root.hex()
        if root != info.result_root:
            raise ResultMismatchError(
                f"job {job_id}: the outputs at {info.output_cid} give root {root}, "
                f"but the provider committed {info.result_root}"
            )
        return info, outputs

    def spec(self, job_id: int) -> JobSpec:
        """The job's spec, read from the store (its CID is on-chain: the store cannot change it)."""
        return read_job_spec(self.protocol.market, self.store, job_id)

    def job_key(self, job_id: int) -> JobKey | None:
        """A confidential job's key, from its spec with this client's ``keys`` (``requester_keys.job_key_of``);
        None for a public job."""
        return job_key_of(self.protocol.market, self.store, job_id, self.keys)

    def _keys(self) -> RequesterKeys:
        if self.keys is None:
            raise ConfigError("a confidential job needs the wallet's encryption key: pass --wallet (and its "
                              "password)")
        return self.keys

    def signer(self) -> LocalAccount:
        """The account that signs; ``ConfigError`` when the client was made without one."""
        return self._signer()

    def _signer(self) -> LocalAccount:
        if self.account is None:
            raise ConfigError("this needs an account: pass --wallet (see `webi wallet list`)")
        return self.account


__all__ = [
    "ChallengeError",
    "ChallengeInfo",
    "CheckReport",
    "Client",
    "JobEvent",
    "JobInfo",
    "JobQuote",
    "JobTimeoutError",
    "JobWait",
    "KeyRelease",
    "PreflightError",
    "ReclaimError",
    "ReclaimInfo",
    "RejectedResultsError",
    "RequestRefusedError",
    "ResultMismatchError",
    "read_inputs",
]
