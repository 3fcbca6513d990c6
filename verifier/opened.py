"""A confidential job opened for judging, on the verifier's own disk only.

The references judge a job by its spec's CIDs (``Runtime.read_spec``, ``read_inputs``, ``load``).
For a confidential job those name ciphertext, so ``opened_job`` gives them a clear spec over an
``OverlayStore``: a private ``LocalStore`` in a temporary folder (removed afterwards) holding the
opened inputs manifest and the clear spec, then the verifier's store of opened models, then the
job's own store (a model in clear is read from there, cached as for any job).

An encrypted model (``model_encrypted``) is opened once per ciphertext CID (``opened_model``): the
bundle is fetched and opened by ``provider.runtime.bundle.open_encrypted_bundle`` (the one way every
party opens one: weights bounded before a byte is fetched, staged, renamed into the cache), added to
the opened-models store in the runtime's cache folder, and a marker named by the ciphertext CID
records the clear CID, so the next audit of the same model opens nothing. Nothing opened is ever
written to the job's store.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from marketplace.errors import ContentError, ContentNotFoundError
from marketplace.jobspec import JobSpec
from marketplace.sealed.envelope import open_sealed
from marketplace.sealed.keys import JobKey
from marketplace.storage import ContentStore
from marketplace.storage.cid import Cid
from marketplace.storage.importer import Added
from marketplace.storage.local import LocalStore
from marketplace.storage.reader import GetBlock
from provider.runtime.bundle import open_encrypted_bundle
from provider.runtime.runtime import MAX_INPUT_MANIFEST

# An age file adds a header and 16 bytes per 64 KiB chunk to its plaintext: a little room over the bound.
AGE_OVERHEAD = 1024 * 1024


class OverlayStore(ContentStore):
    """Reads each block from the first of ``local`` that has it, else from ``remote``; never writes."""

    name = "opened job"

    def __init__(self, local: list[LocalStore], remote: ContentStore) -> None:
        self.local, self.remote = local, remote

    def get_block(self, cid: Cid) -> bytes:
        for store in self.local:
            if store.has_block(cid):
                return store.get_block(cid)
        return self.remote.get_block(cid)

    @contextlib.contextmanager
    def dag_reader(self, root: Cid) -> Iterator[GetBlock]:
        if any(store.has_block(root) for store in self.local):
            yield self.get_block
        else:  # the job's own content (a model in clear): the remote store's way, a CAR stream for a gateway
            with self.remote.dag_reader(root) as get_block:
                yield get_block

    def _refused(self, *_: Any, **__: Any) -> Any:
        raise ContentError("an opened job's store is read-only: nothing opened goes back to a store")

    def put_block(self, cid: Cid, data: bytes) -> None:
        self._refused()

    def add_path(self, path: Path, *, recursive: bool = False, pin: bool = True, progress: Any = None) -> Added:
        return self._refused()  # type: ignore[no-any-return]

    def add_stream(self, stream: BinaryIO, *, pin: bool = True, progress: Any = None) -> Added:
        return self._refused()  # type: ignore[no-any-return]

    def pin(self, cid: Cid) -> None:
        self._refused()

    def unpin(self, cid: Cid) -> None:
        self._refused()

    def pins(self) -> list[Cid]:
        return []

    def import_car(self, stream: BinaryIO, *, pin_roots: bool = True) -> list[Cid]:
        return self._refused()  # type: ignore[no-any-return]


def opened_model(store: ContentStore, sealed: Cid, job_key: JobKey, models: LocalStore, cache: Path) -> str:
    """The clear CID of the encrypted bundle ``sealed``, opened into ``models`` once per ciphertext CID.

    ``SealedError`` when a file does not open with ``job_key``, ``ContentNotFoundError`` when the store
    lacks the bundle; the opened folder stays in ``cache/bundles`` (``open_encrypted_bundle``'s cache)."""
    marker = cache / f"{sealed.to_v1()}.clear"
    if marker.is_file():
        clear = marker.read_text().strip()
        if models.has_block(Cid.parse(clear)):
            return clear
    # No weight bound here: the references' ``check_model`` applies this machine's limits before loading.
    folder = open_encrypted_bundle(store, sealed, cache / "bundles", job_key, None)
    clear = str(models.add_path(folder, recursive=True).cid)
    with tempfile.NamedTemporaryFile("w", dir=cache, prefix=".marker-", delete=False) as staged:
        staged.write(clear)
    Path(staged.name).replace(marker)  # atomic: a parallel audit of the same model reads a whole marker
    return clear


@contextlib.contextmanager
def opened_job(store: ContentStore, spec: JobSpec, job_key: JobKey, cache: Path,
               scratch: Path | None = None) -> Iterator[tuple[ContentStore, str]]:
    """A store and the CID of a clear spec that judge the confidential job ``spec`` as a public one.
    The opened inputs live in a temporary folder under ``scratch`` (default: the system's), removed afterwards.

    Raises ``SealedError`` when its inputs or model do not open with ``job_key`` (the requester's
    doing, the key being the one the envelope names), ``ContentNotFoundError`` when the store lacks them.
    """
    if spec.confidential is None:
        raise ContentNotFoundError("not a confidential job: nothing to open")
    models = LocalStore(cache / "models-store")
    if scratch is not None:
        scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="webi-audit-", dir=scratch) as folder:
        clear = LocalStore(Path(folder))
        try:
            inputs = open_sealed(store.read_bytes(Cid.parse(spec.inputs), limit=MAX_INPUT_MANIFEST + AGE_OVERHEAD),
                                 job_key, f"the inputs manifest {spec.inputs}")
            update: dict[str, Any] = {"inputs": str(clear.add_bytes(inputs).cid), "confidential": None}
            if spec.confidential.model_encrypted:
                update["model"] = opened_model(store, Cid.parse(spec.model), job_key, models, cache)
            opened = spec.model_copy(update=update)
            yield OverlayStore([clear, models], store), str(clear.add_bytes(opened.to_bytes()).cid)
        finally:
            clear.close()
            models.close()
