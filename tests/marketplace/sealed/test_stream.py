"""age files through marketplace.sealed.stream: round trips, bounded memory, and every bad input refused cleanly."""

from __future__ import annotations

import json
import random
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from marketplace.errors import NotEncryptedError, SealedError, TamperedError, WrongKeyError
from marketplace.sealed import JobKey, PartyKey, decrypt_bytes, decrypt_file, encrypt_bytes, encrypt_file, wrap
from marketplace.sealed.age import MAGIC
from marketplace.sealed.stream import encrypted_reader
from marketplace.storage.local import LocalStore

MIB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    """3 MiB of fixed random bytes: 48 age chunks, so failures can come after chunks were written."""
    path = tmp_path / "inputs.jsonl"
    path.write_bytes(random.Random(17).randbytes(3 * MIB))
    return path


@pytest.fixture
def job() -> JobKey:
    return JobKey.generate()


@pytest.fixture
def sealed(plain: Path, job: JobKey, tmp_path: Path) -> Path:
    return encrypt_file(plain, tmp_path / "inputs.jsonl.age", [job.recipient])


def leftovers(folder: Path, *expected: str) -> list[str]:
    """Names in ``folder`` other than the expected ones: temporary or partial files a failure left."""
    return sorted(path.name for path in folder.iterdir() if path.name not in expected)


def test_file_round_trip_over_many_chunks(plain: Path, sealed: Path, job: JobKey, tmp_path: Path) -> None:
    out = decrypt_file(sealed, tmp_path / "out" / "inputs.jsonl", [job.identity])
    assert out.read_bytes() == plain.read_bytes()
    assert sealed.read_bytes().startswith(MAGIC)
    assert plain.read_bytes()[:4096] not in sealed.read_bytes()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert leftovers(out.parent, "inputs.jsonl") == []


def test_outputs_for_two_recipients_open_with_either_key(plain: Path, job: JobKey, tmp_path: Path) -> None:
    requester = PartyKey.generate()
    sealed = encrypt_file(plain, tmp_path / "outputs.age", [requester.recipient, job.recipient])
    for name, key in (("by-requester", requester), ("by-job-key", job)):
        assert decrypt_file(sealed, tmp_path / name, [key.identity]).read_bytes() == plain.read_bytes()


def test_wrong_identity_is_wrong_key_and_writes_nothing(sealed: Path, tmp_path: Path) -> None:
    with pytest.raises(WrongKeyError, match="not encrypted to any key you hold") as raised:
        decrypt_file(sealed, tmp_path / "out.jsonl", [JobKey.generate().identity])
    assert str(sealed) in str(raised.value)
    assert leftovers(tmp_path, "inputs.jsonl", "inputs.jsonl.age") == []


@pytest.mark.parametrize("where", [0.5, 0.999], ids=["middle-chunk", "last-chunk"])
def test_flipped_payload_byte_is_tampered_and_leaves_no_plaintext(sealed: Path, job: JobKey, tmp_path: Path,
                                                                   where: float) -> None:
    data = bytearray(sealed.read_bytes())
    data[int(len(data) * where)] ^= 0x01
    sealed.write_bytes(bytes(data))
    with pytest.raises(TamperedError, match="AEAD check failed"):
        decrypt_file(sealed, tmp_path / "out.jsonl", [job.identity])
    assert leftovers(tmp_path, "inputs.jsonl", "inputs.jsonl.age") == []


def test_flipped_header_mac_is_tampered(sealed: Path, job: JobKey, tmp_path: Path) -> None:
    data = bytearray(sealed.read_bytes())
    mac_at = data.index(b"\n--- ") + 5
    data[mac_at] = ord("A") if data[mac_at] != ord("A") else ord("B")
    sealed.write_bytes(bytes(data))
    with pytest.raises(TamperedError, match="Header MAC is invalid"):
        decrypt_file(sealed, tmp_path / "out.jsonl", [job.identity])


@pytest.mark.parametrize("keep", [0.5, 0.9999, "header"], ids=["half", "last-bytes", "header-only"])
def test_truncated_file_is_tampered(sealed: Path, job: JobKey, tmp_path: Path, keep: float | str) -> None:
    data = sealed.read_bytes()
    cut = data.index(b"\n", data.index(b"\n--- ") + 1) + 1 if keep == "header" else int(len(data) * float(keep))
    sealed.write_bytes(data[:cut])
    with pytest.raises(TamperedError):
        decrypt_file(sealed, tmp_path / "out.jsonl", [job.identity])
    assert leftovers(tmp_path, "inputs.jsonl", "inputs.jsonl.age") == []


def test_failure_leaves_an_existing_destination_as_it_was(sealed: Path, tmp_path: Path) -> None:
    existing = tmp_path / "out.jsonl"
    existing.write_bytes(b"previous results")
    with pytest.raises(WrongKeyError):
        decrypt_file(sealed, existing, [JobKey.generate().identity])
    assert existing.read_bytes() == b"previous results"


@pytest.mark.parametrize("content", [b"", b"{\"task\": 1}\n" * 100, b"age-encryption.org/v2\n"],
                         ids=["empty", "plain-jsonl", "other-version"])
def test_a_file_that_is_not_age_is_refused_by_name(plain: Path, job: JobKey, tmp_path: Path, content: bytes) -> None:
    plain.write_bytes(content)
    with pytest.raises(NotEncryptedError, match="is not an age file") as raised:
        decrypt_file(plain, tmp_path / "out", [job.identity])
    assert str(plain) in str(raised.value)
    with pytest.raises(NotEncryptedError):
        decrypt_bytes(content, [job.identity], "bafy-test")


def test_bytes_round_trip_and_wrong_key(job: JobKey) -> None:
    blob = encrypt_bytes(b"canary-4711", [job.recipient])
    assert blob.startswith(MAGIC)
    assert b"canary-4711" not in blob
    assert decrypt_bytes(blob, [JobKey.generate().identity, job.identity]) == b"canary-4711"
    with pytest.raises(WrongKeyError, match="bafyexample"):
        decrypt_bytes(blob, [JobKey.generate().identity], "bafyexample")


def test_bad_keys_are_refused_without_echoing_a_secret(plain: Path, tmp_path: Path) -> None:
    with pytest.raises(SealedError, match="not an age X25519 recipient"):
        encrypt_file(plain, tmp_path / "x.age", ["age1notakey"])
    with pytest.raises(SealedError, match="no recipients"):
        encrypt_bytes(b"x", [])
    secret_typo = "AGE-SECRET-KEY-1" + "Q" * 58
    with pytest.raises(SealedError) as raised:
        decrypt_bytes(encrypt_bytes(b"x", [JobKey.generate().recipient]), [secret_typo])
    assert secret_typo not in str(raised.value)
    assert leftovers(tmp_path, "inputs.jsonl") == []


def test_encrypted_reader_streams_ciphertext_into_the_store(plain: Path, job: JobKey, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    with encrypted_reader(plain, [job.recipient]) as ciphertext:
        added = store.add_stream(ciphertext)
    stored = b"".join(store.cat(added.cid))
    assert stored.startswith(MAGIC)
    assert plain.read_bytes()[:4096] not in stored
    assert decrypt_bytes(stored, [job.identity], str(added.cid)) == plain.read_bytes()


def test_encrypted_reader_refuses_a_missing_file_or_bad_recipient(job: JobKey, tmp_path: Path) -> None:
    with pytest.raises(SealedError, match="cannot read"), encrypted_reader(tmp_path / "absent", [job.recipient]):
        pass
    with pytest.raises(SealedError, match="not an age X25519 recipient"), \
            encrypted_reader(tmp_path / "absent", ["age1bad"]):
        pass


def test_encrypted_reader_reports_a_reader_that_stopped_early(plain: Path, job: JobKey) -> None:
    with pytest.raises(SealedError, match="cannot encrypt"), encrypted_reader(plain, [job.recipient]) as ciphertext:
        assert ciphertext.read(100).startswith(MAGIC)


def test_encrypting_64_mib_keeps_memory_bounded(tmp_path: Path) -> None:
    """In a fresh interpreter, so the peak (VmHWM) is this encryption's and not earlier tests'."""
    source = tmp_path / "big.bin"
    with source.open("wb") as out:
        out.truncate(64 * MIB)  # sparse: memory use does not depend on the bytes
    script = """
import json, sys
from pathlib import Path
from marketplace.sealed import JobKey, decrypt_file, encrypt_file

def peak_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

key = JobKey.generate()
before = peak_kib()
source = Path(sys.argv[1])
encrypt_file(source, source.with_suffix(".age"), [key.recipient])
decrypt_file(source.with_suffix(".age"), source.with_suffix(".out"), [key.identity])
print(json.dumps({"before": before, "after": peak_kib(), "size": source.with_suffix(".out").stat().st_size}))
"""
    if not Path("/proc/self/status").exists():
        pytest.skip("needs Linux's /proc/self/status for the peak resident memory")
    result = subprocess.run([sys.executable, "-c", script, str(source)], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, check=True)
    figures = json.loads(result.stdout)
    assert figures["size"] == 64 * MIB
    assert (figures["after"] - figures["before"]) / 1024 < 32, figures


@pytest.mark.skipif(shutil.which("age") is None, reason="no age binary installed (Debian package age)")
def test_the_standard_age_tool_reads_and_writes_our_files(sealed: Path, plain: Path, job: JobKey,
                                                          tmp_path: Path) -> None:
    """age (the Go reference) opens a wrapped job key, then the inputs with it; and we open its files."""
    provider = PartyKey.generate()
    (tmp_path / "provider.key").write_bytes(provider.identity_file())
    (tmp_path / "wrapped.age").write_bytes(wrap(job, provider.recipient))

    def age(*args: str) -> bytes:
        return subprocess.run(["age", *args], capture_output=True, timeout=60, check=True).stdout

    (tmp_path / "job.key").write_bytes(age("-d", "-i", str(tmp_path / "provider.key"), str(tmp_path / "wrapped.age")))
    assert age("-d", "-i", str(tmp_path / "job.key"), str(sealed)) == plain.read_bytes()
    theirs = age("-r", job.recipient, "-o", str(tmp_path / "theirs.age"), str(plain))
    assert theirs == b""
    assert decrypt_file(tmp_path / "theirs.age", tmp_path / "theirs", [job.identity]).read_bytes() == \
        plain.read_bytes()
