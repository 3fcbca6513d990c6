"""Re-execution for ``webi audit --reexecute``: the verifier's comparators on tasks of finalized jobs.

The auditor (in the marketplace package) runs no models; it takes this through the
``webi.reexecutors`` entry point. Each task's output is first proven against the job's on-chain
root, then judged by the audit's own rule (``verifier.verdict.audit_tasks``: both references,
allowances scaled to their noise).
"""

from __future__ import annotations

from pathlib import Path

from marketplace.audit import Reexecutor, TaskVerdict
from marketplace.errors import WebiError
from marketplace.history import JobView
from marketplace.results import MerkleTree, parse_output_manifest, verify_proof
from marketplace.storage import ContentStore
from marketplace.storage.cid import Cid
from provider.runtime import Runtime
from verifier.verdict import audit_tasks

_MAX_MANIFEST = 1024**3


def create_reexecutor(store: ContentStore, cache: Path) -> Reexecutor:
    runtime = Runtime(store, cache)

    def reexecute(job: JobView, indices: list[int]) -> list[TaskVerdict]:
        try:
            spec = runtime.read_spec(job.spec_cid)
            inputs = runtime.read_inputs(spec)
            outputs = parse_output_manifest(
                store.read_bytes(Cid.parse(job.output_cid or ""), limit=_MAX_MANIFEST), job.num_tasks
            )
        except WebiError as error:
            return [TaskVerdict(job.job_id, index, False, f"cannot read the job: {error}") for index in indices]
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

    return reexecute
