"""Encrypting and decrypting content as age files, streamed in 64 KiB chunks with bounded memory.

Files are written under a temporary name in the destination's folder and renamed only once the
whole stream has been processed, so a failure leaves nothing behind: in particular a decryption
that fails in a later chunk (age authenticates each chunk as it goes, so earlier chunks were
already written) never leaves a partial plaintext file. Temporary and decrypted files are created
readable by their owner only.

``encrypted_reader`` gives the ciphertext of a file as a readable stream, encrypted on a thread
into a pipe, so that ``ContentStore.add_stream`` can store it without a ciphertext copy on disk.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from collections.abc import Iterator, Sequence
from io import BytesIO
from pathlib import Path
from typing import BinaryIO

from marketplace.errors import NotEncryptedError, SealedError
from marketplace.sealed import age

log = logging.getLogger(__name__)

# pyrage reads 8 KiB at a time: a 1 MiB buffer turns that into few system calls. Linux pipes default
# to 64 KiB; 1 MiB lets the encrypting thread run ahead of the reader.
_BUFFER_BYTES = 1024 * 1024
# Into the pipe, each 64 KiB age chunk goes out as its own write: pyrage holds the GIL while it
# encrypts, and a write is where it lets the store's importer threads run.
_PIPE_WRITE_BYTES = 64 * 1024


def encrypt_file(src: Path, dst: Path, recipients: Sequence[str]) -> Path:
    """Writes ``src`` encrypted to every recipient (``age1...``) as the age file ``dst``; returns ``dst``."""
    with _opened(src) as reader, _replacing(dst) as writer:
        age.encrypt_stream(reader, writer, recipients, str(src))
    return dst


def decrypt_file(src: Path, dst: Path, identities: Sequence[str]) -> Path:
    """Writes the plaintext of the age file ``src`` as ``dst`` (mode 0600); on any failure ``dst`` is untouched.

    Raises ``NotEncryptedError``, ``WrongKeyError`` or ``TamperedError`` naming ``src``.
    """
    with _opened(src) as reader:
        _check_magic(reader.read(len(age.MAGIC)), str(src))
        reader.seek(0)
        with _replacing(dst) as writer:
            age.decrypt_stream(reader, writer, identities, str(src))
    return dst


def encrypt_bytes(data: bytes, recipients: Sequence[str], source: str = "data") -> bytes:
    """``data`` as an age file for every recipient: for small things (keys, manifests, one output)."""
    out = BytesIO()
    age.encrypt_stream(BytesIO(data), out, recipients, source)
    return out.getvalue()


def decrypt_bytes(blob: bytes, identities: Sequence[str], source: str = "data") -> bytes:
    """The plaintext of the age file ``blob``; errors name ``source`` (a CID, a file name)."""
    _check_magic(blob[:len(age.MAGIC)], source)
    out = BytesIO()
    age.decrypt_stream(BytesIO(blob), out, identities, source)
    return out.getvalue()


@contextlib.contextmanager
def encrypted_reader(src: Path, recipients: Sequence[str]) -> Iterator[BinaryIO]:
    """The age ciphertext of ``src`` as a stream to read to its end, encrypted on a thread as it is read.

    On leaving the block, an encryption failure is raised as ``SealedError`` even if the reader saw
    what looked like a clean end of stream, so a caller never stores a truncated ciphertext unawares.
    """
    for recipient in recipients:
        age.check_recipient(recipient)
    failure: list[BaseException] = []
    with _opened(src) as plain:
        read_end, write_end = os.pipe()
        _widen(write_end)

        def encrypt() -> None:
            try:
                with os.fdopen(write_end, "wb", buffering=_PIPE_WRITE_BYTES) as pipe:
                    age.encrypt_stream(plain, pipe, recipients, str(src))
            except BaseException as error:  # raised in the reading thread below
                failure.append(error)

        worker = threading.Thread(target=encrypt, name=f"webi-encrypt-{src.name}", daemon=True)
        with os.fdopen(read_end, "rb", buffering=_BUFFER_BYTES) as stream:
            worker.start()
            try:
                yield stream
            finally:
                stream.close()  # a reader that stopped early unblocks the writer (it gets a broken pipe)
                worker.join()
    if failure:
        error = failure[0]
        if isinstance(error, SealedError):
            raise error
        raise SealedError(f"cannot encrypt {src}: {error}") from error


def _check_magic(head: bytes, source: str) -> None:
    if not age.looks_like_age(head):
        raise NotEncryptedError(f"{source} is not an age file (it does not start with {age.MAGIC!r})")


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[BinaryIO]:
    try:
        stream = path.open("rb", buffering=_BUFFER_BYTES)
    except OSError as error:
        raise SealedError(f"cannot read {path}: {error.strerror}") from None
    with stream:
        yield stream


@contextlib.contextmanager
def _replacing(dst: Path) -> Iterator[BinaryIO]:
    """A temporary file beside ``dst``, renamed over it if the block succeeds and deleted if not."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".part")
    temporary = Path(name)
    try:
        with os.fdopen(descriptor, "wb", buffering=_BUFFER_BYTES) as writer:
            yield writer
        temporary.replace(dst)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _widen(descriptor: int) -> None:
    """Linux only (F_SETPIPE_SZ); elsewhere, or over pipe-max-size, the default pipe works, only slower."""
    try:
        import fcntl

        fcntl.fcntl(descriptor, fcntl.F_SETPIPE_SZ, _BUFFER_BYTES)
    except (ImportError, AttributeError, OSError) as error:
        log.debug("the encryption pipe keeps its default size: %s", error)
