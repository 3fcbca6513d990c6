"""Re-execution for ``webi audit --reexecute``: the verifier's comparators on tasks of finalized jobs.

The auditor (in the marketplace package) runs no models; it takes this through the
``webi.reexecutors`` entry point. Each task's output is first proven against the job's on-chain
root, then judged by the audit's own rule (``verifier.verdict.audit_tasks``: both references,
allowances scaled to their noise).

A confidential job is judged only where the auditor holds a key that opens it (``webi audit
--wallet``): the key the spec wraps to the wallet's address (its requester, or a directed provider),
else a key released to that address on-chain (``KeyReleased``, ``verifier.confidential.JobKeys``).
Its inputs and model are opened as the verifier opens them (``verifier.opened.opened_job``), its
sealed output manifest in memory, and it is judged as a public one. Everything opened stays under
the auditor's cache folder, and nothing here logs a value. Without such a key the job is left out
(``NotReexecutedError``: the report counts it), never failed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from marketplace.audit import NotReexecutedError, Reexecutor, TaskVerdict
from marketplace.chain.market import JobMarket
from marketplace.errors import SealedError, WebiError
from marketplace.history import JobView
from marketplace.jobspec import JobSpec
from marketplace.protocol import Confidentiality
from marketplace.results import MerkleTree, parse_output_manifest, verify_proof
from marketplace.sealed.envelope import open_sealed
from marketplace.sealed.keys import JobKey, PartyKey
from marketplace.storage import ContentStore
from marketplace.storage.cid import Cid
from provider.runtime import Runtime
from verifier.confidential import BadReleasedKeyError, BadSpecKeyError, JobKeys, NoReleasedKeyError
from verifier.opened import opened_job
from verifier.verdict import audit_tasks

log = logging.getLogger(__name__)

_MAX_MANIFEST = 1024**3
NO_KEY = "no key"  # the reason shared by every confidential job the auditor cannot open: the report counts them


def create_reexecutor(store: ContentStore, cache: Path, *, address: str | None = None,
                      party_keys: Sequence[PartyKey] = (), market: JobMarket | None = None) -> Reexecutor:
    """Re-executes over ``store``, models cached under ``cache``. ``address`` and ``party_keys`` (the
    auditor's wallet) open confidential jobs: through their specs, or through keys released to
    ``address`` on ``market``; without them confidential jobs are left out."""
    runtime = Runtime(store, cache)
    releases = JobKeys(market, address, list(party_keys)) if market is not None and address else None

    def reexecute(job: JobView, indices: list[int]) -> list[TaskVerdict]:
        try:
            spec = runtime.read_spec(job.spec_cid)
            if job.confidentiality != Confidentiality.PUBLIC or spec.confidential is not None:
                return _confidential(job, spec, indices)
            inputs = runtime.read_inputs(spec)
            manifest = store.read_bytes(Cid.parse(job.output_cid or ""), limit=_MAX_MANIFEST)
            return _judged(runtime, job, spec, inputs, manifest, indices)
        except NotReexecutedError:
            raise
        except WebiError as error:
            return _unreadable(job, indices, error)

    def _confidential(job: JobView, spec: JobSpec, indices: list[int]) -> list[TaskVerdict]:
        if spec.confidential is None:
            raise NotReexecutedError(job.job_id, "confidential on-chain, but its spec has no confidential section")
        job_key = _job_key(job, spec)
        # The provider's manifest first: one that does not open with the job's own key is its fault.
        manifest = open_sealed(store.read_bytes(Cid.parse(job.output_cid or ""), limit=_MAX_MANIFEST), job_key,
                               f"job {job.job_id}'s output manifest {job.output_cid}")
        try:
            with opened_job(store, spec, job_key, cache / "opened", scratch=cache / "scratch") as (clear, clear_cid):
                clear_runtime = Runtime(clear, runtime.cache, devices=runtime.devices,
                                        dtype=runtime.dtype_for(runtime.devices[0]), limits=runtime.limits)
                clear_spec = clear_runtime.read_spec(clear_cid)
                inputs = clear_runtime.read_inputs(clear_spec)
                log.info("re-executing %d tasks of confidential job %d in clear", len(indices), job.job_id)
                return _judged(clear_runtime, job, clear_spec, inputs, manifest, indices)
        except SealedError as error:  # the inputs or model the requester sealed: nothing the provider did
            raise NotReexecutedError(job.job_id, f"its inputs or model do not open with the job key ({error})") \
                from None

    def _job_key(job: JobView, spec: JobSpec) -> JobKey:
        """The key the spec wraps to the auditor's address, else one released to it (``JobKeys.job_key``,
        as a verifier finds its own); ``NotReexecutedError`` when none opens the job."""
        assert spec.confidential is not None
        if releases is None or not party_keys:
            raise NotReexecutedError(job.job_id, NO_KEY)
        try:
            return releases.job_key(job.job_id, spec.confidential)
        except NoReleasedKeyError:
            raise NotReexecutedError(job.job_id, NO_KEY) from None
        except (BadSpecKeyError, BadReleasedKeyError) as error:
            raise NotReexecutedError(job.job_id, str(error)) from None

    return reexecute


def _judged(runtime: Runtime, job: JobView, spec: JobSpec, inputs: list[str], manifest: bytes,
            indices: list[int]) -> list[TaskVerdict]:
    """Each task's output proven against the committed root, then judged by the audit's rule."""
    outputs = parse_output_manifest(manifest, job.num_tasks)
    tree = MerkleTree(outputs)
    root = bytes.fromhex((job.result_root or "").removeprefix("0x"))
    proven = [index for index in indices if verify_proof(root, index, outputs[index], tree.proof(index))]
    verdicts = [
        TaskVerdict(job.job_id, index, False, "output is not under the committed root")
        for index in indices
        if index not in proven
    ]
    checks = audit_tasks(runtime, spec, inputs, proven, {index: outputs[index] for index in proven})
    return verdicts + [TaskVerdict(job.job_id, check.index, check.passed, check.reason) for check in checks]


def _unreadable(job: JobView, indices: list[int], error: WebiError) -> list[TaskVerdict]:
    return [TaskVerdict(job.job_id, index, False, f"cannot read the job: {error}") for index in indices]
