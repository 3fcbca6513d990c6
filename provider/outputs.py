"""The provider's own copy of the outputs it committed to, kept until the job is final.

A verifier that cannot fetch a job's outputs demands them on-chain (``revealOutputs``), and a
provider that appeals a failed verdict re-checks them: both need exactly the bytes behind the
committed Merkle root, whether or not the content store still serves them. So the daemon writes
each output manifest here when it publishes it (one file per job, written to a temporary name and
renamed, so a crash leaves a whole file or none), reads it back first, and deletes it once the job
has ended. The store is only the fallback.

The store may also be someone else's (the requester's, say) and may drop the outputs at any time
(unpin and garbage-collect): so when a job of ours is audited or challenged, the daemon adds the
archived manifest to the store again (``republish``). The same bytes give the same CID, so what the
verifier or the panel fetches is exactly what was committed.

A confidential job's archive holds the exact ciphertext it published (age is randomized: sealing the
same outputs again would give another CID), never the plaintext: ``opener`` (the job key, from
``provider.confidential``) turns it back into the manifest whenever the outputs themselves are needed,
so the root is checked against the plaintext and republishing adds the committed ciphertext again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from marketplace.errors import ContentError, WebiError
from marketplace.results import MerkleTree, parse_output_manifest
from marketplace.storage import Cid, ContentStore

log = logging.getLogger(__name__)

# What a stored manifest is before it is parsed: itself for a public job, the job key's decryption otherwise.
Opener = Callable[[bytes], bytes]


@dataclass(frozen=True)
class OutputArchive:
    """Output manifests by job id under ``folder``."""

    folder: Path

    def path(self, job_id: int) -> Path:
        return self.folder / f"job-{job_id}.jsonl"

    def keep(self, job_id: int, manifest: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.folder / f".job-{job_id}.jsonl.partial"
        with partial.open("wb") as out:
            out.write(manifest)
            out.flush()
            os.fsync(out.fileno())
        partial.replace(self.path(job_id))

    def load(self, job_id: int) -> bytes | None:
        try:
            return self.path(job_id).read_bytes()
        except FileNotFoundError:
            return None

    def drop(self, job_id: int) -> None:
        self.path(job_id).unlink(missing_ok=True)


def committed_outputs(job_id: int, root: bytes, num_tasks: int, archive: OutputArchive | None,
                      store: ContentStore, output_cid: str,
                      opener: Opener | None = None) -> tuple[list[bytes], MerkleTree]:
    """The outputs behind ``root`` and their tree: from the archive, else from the store.

    A copy that does not rebuild the root (a damaged file, another job's outputs) is not used: what
    goes on-chain or into an appeal must be what was committed. ``ContentError`` when neither
    source has it. ``opener`` opens a confidential job's sealed manifest first.
    """
    problems: list[str] = []
    if archive is not None:
        found = _rebuilds(archive.load(job_id), root, num_tasks, str(archive.path(job_id)), problems, opener)
        if found is not None:
            return found
    if output_cid:
        try:
            data = store.read_bytes(Cid.parse(output_cid))
        except WebiError as error:
            problems.append(str(error))
        else:
            found = _rebuilds(data, root, num_tasks, f"{store.name} {output_cid}", problems, opener)
            if found is not None:
                return found
    raise ContentError(f"job {job_id}: the committed outputs are not available"
                       + (f" ({'; '.join(problems)})" if problems else ""))


def _rebuilds(data: bytes | None, root: bytes, num_tasks: int, where: str,
              problems: list[str], opener: Opener | None = None) -> tuple[list[bytes], MerkleTree] | None:
    if data is None:
        return None
    try:
        outputs = parse_output_manifest(data if opener is None else opener(data), num_tasks)
    except (ValueError, WebiError) as error:
        problems.append(f"{where}: {error}")
        return None
    tree = MerkleTree(outputs)
    if tree.root != root:
        problems.append(f"{where} does not rebuild the committed root 0x{root.hex()}")
        return None
    return outputs, tree


def republish(job_id: int, root: bytes, num_tasks: int, archive: OutputArchive, store: ContentStore,
              output_cid: str, opener: Opener | None = None) -> bool:
    """Adds the archived manifest of ``job_id`` to ``store`` again (pinned), so it serves ``output_cid``.

    Only a copy that rebuilds the committed root (once opened, for a confidential job) and gives the
    committed CID is added: a confidential job's ciphertext as it was published. Whether the
    store holds the outputs now; a store error propagates (the caller tries again later).
    """
    problems: list[str] = []
    data = archive.load(job_id)
    if data is None or _rebuilds(data, root, num_tasks, str(archive.path(job_id)), problems, opener) is None:
        log.warning("job %d: no archived copy of the outputs to publish again%s", job_id,
                    f" ({'; '.join(problems)})" if problems else "")
        return False
    added = store.add_bytes(data).cid
    if output_cid and Cid.parse(output_cid) != added:
        log.error("job %d: our archived outputs are %s, not the committed %s", job_id, added, output_cid)
        return False
    log.info("job %d: outputs %s published again to %s", job_id, added, store.name)
    return True
