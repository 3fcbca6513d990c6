"""The importer gives Kubo's CIDs: known values, and the IPFS reference importer on the same files."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from marketplace.errors import ContentError
from marketplace.storage.importer import CHUNK_SIZE, MAX_LINKS, Importer
from tests.marketplace.storage.conftest import make_tree, pseudo_random

REFERENCE = Path(__file__).with_name("reference_importer.mjs")
ROOT = Path(__file__).resolve().parents[3]


def reference_cids(*paths: Path, chunk: int = CHUNK_SIZE, links: int = MAX_LINKS) -> dict[str, str]:
    """CIDs from ipfs-unixfs-importer (npm), the IPFS project's reference importer."""
    node = shutil.which("node")
    assert node is not None, "Node.js is part of the set-up"
    result = subprocess.run([node, str(REFERENCE), "--chunk", str(chunk), "--links", str(links), *map(str, paths)],
                            capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    answer: dict[str, str] = json.loads(result.stdout)
    return answer


def test_known_cids() -> None:
    importer = Importer()
    assert str(importer.add_bytes(b"").cid) == "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    hello = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
    assert str(importer.add_bytes(b"hello world\n").cid) == hello


def test_empty_directory_is_the_well_known_cid(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    added = Importer().add_path(tmp_path / "empty", recursive=True)
    assert str(added.cid) == "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"


SIZES = [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 7, 3_000_000,
         MAX_LINKS * CHUNK_SIZE, MAX_LINKS * CHUNK_SIZE + 1]


def test_files_at_chunk_and_layer_boundaries_match_reference(tmp_path: Path) -> None:
    paths = []
    for size in SIZES:
        path = tmp_path / f"file-{size}"
        path.write_bytes(pseudo_random(size, seed=size))
        paths.append(path)
    expected = reference_cids(*paths)
    importer = Importer()
    for path in paths:
        added = importer.add_path(path)
        assert str(added.cid) == expected[str(path)], path.name
        assert added.size == path.stat().st_size


@pytest.mark.parametrize("size", [0, 9, 10, 11, 30, 31, 90, 91, 270, 271, 1000])
def test_deep_trees_match_reference(tmp_path: Path, size: int) -> None:
    """With 10-byte chunks and 3 links per node, small files reach four and five levels."""
    path = tmp_path / "deep"
    path.write_bytes(pseudo_random(size, seed=size))
    expected = reference_cids(path, chunk=10, links=3)[str(path)]
    assert str(Importer(chunk_size=10, max_links=3).add_path(path).cid) == expected


def test_directory_tree_matches_reference(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "model")
    expected = reference_cids(tree)[str(tree)]
    seen = []
    added = Importer(on_added=seen.append).add_path(tree, recursive=True)
    assert str(added.cid) == expected
    assert added.is_directory
    assert ".hidden" not in " ".join(item.path for item in seen)
    assert seen[-1] == added and "model/weights/model.safetensors" in [item.path for item in seen]


def test_hidden_entries_change_the_cid_when_asked_for(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "model")
    assert Importer(hidden=True).add_path(tree, recursive=True).cid != Importer().add_path(tree, recursive=True).cid


def test_short_reads_give_the_same_cid() -> None:
    data = pseudo_random(3 * CHUNK_SIZE + 5)

    class Trickle(io.RawIOBase):
        def __init__(self) -> None:
            self.offset = 0

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:  # type: ignore[override]
            piece = data[self.offset:self.offset + min(size, 1000)]
            self.offset += len(piece)
            return piece

    assert Importer().add_stream(Trickle()).cid == Importer().add_bytes(data).cid  # type: ignore[arg-type]


def test_progress_counts_every_byte() -> None:
    counted: list[int] = []
    Importer(progress=counted.append).add_bytes(pseudo_random(CHUNK_SIZE * 2 + 3))
    assert sum(counted) == CHUNK_SIZE * 2 + 3


def test_refuses_directory_without_recursive_and_symlinks(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "model")
    with pytest.raises(ContentError, match="add it recursively"):
        Importer().add_path(tree)
    (tree / "link").symlink_to(tree / "config.json")
    with pytest.raises(ContentError, match="symbolic link"):
        Importer().add_path(tree, recursive=True)
    with pytest.raises(ContentError, match="does not exist"):
        Importer().add_path(tmp_path / "missing")


def test_refuses_a_directory_kubo_would_shard(tmp_path: Path) -> None:
    crowded = tmp_path / "crowded"
    crowded.mkdir()
    for index in range(5_000):
        (crowded / f"entry-{index:05d}-{'x' * 8}").touch()
    with pytest.raises(ContentError, match="HAMT"):
        Importer().add_path(crowded, recursive=True)


def test_one_gigabyte_adds_in_bounded_memory(tmp_path: Path) -> None:
    """A 1 GiB file streams into a local store with under 100 MB resident (measured in a fresh process)."""
    script = textwrap.dedent("""
        import io, sys
        from pathlib import Path
        from marketplace.storage.local import LocalStore

        def peak_mb():
            # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec.
            for line in open("/proc/self/status"):
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024

        class Generated(io.RawIOBase):
            # 1 GiB of distinct 256 KiB chunks, made on the fly so the test needs no 1 GiB file.
            def __init__(self):
                self.left = 1 << 30
                self.index = 0
                self.base = bytes(range(256)) * 1024
            def readable(self):
                return True
            def read(self, size=-1):
                size = min(size, self.left, 262144)
                self.left -= size
                self.index += 1
                return (self.index.to_bytes(8, "big") + self.base[8:size])[:size]

        before = peak_mb()
        added = LocalStore(Path(sys.argv[1])).add_stream(Generated())
        print(added.size, before, peak_mb())
    """)
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "store")], capture_output=True, text=True,
                            timeout=300, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    size, before_mb, peak_mb = map(int, result.stdout.split())
    assert size == 1 << 30
    assert peak_mb < 100, f"peak resident {peak_mb} MB (at start {before_mb} MB)"
