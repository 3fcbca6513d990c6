"""Content store throughput: add and cat of one large file, next to plain sha256 of the same bytes.

    python scripts/bench_store.py [--size-mb 256] [--runs 3] [--json]

Figures (best of --runs, each add into a fresh store directory on the same disk as the file):
  sha256_mb_s    hashlib.sha256 over the file, read in 1 MiB pieces: the floor any CID needs
  add_mb_s       LocalStore.add_path: chunk, hash, build the DAG, write every block
  only_hash_mb_s the same without writing (``webi store add --only-hash``)
  cat_mb_s       LocalStore.cat: read every block back, hash-check it, stream the bytes
  write_mb_s     the same 256 KiB pieces written as plain files, no hashing, as many threads as
                 the importer uses: the ceiling this disk and kernel put on any add
  add_vs_sha256  add_mb_s / sha256_mb_s (goal >= 0.5)
  peak_rss_mb    this process's peak resident memory (VmHWM), which never holds the file
  encrypted_add_mb_s      the same file age-encrypted to a job recipient on a thread (marketplace.sealed
                          encrypted_reader) while LocalStore.add_stream stores the ciphertext: a confidential
                          job's input upload; each run right after a plain add, into its own fresh store
  encrypted_add_vs_plain  encrypted_add_mb_s / add_mb_s, both from the same runs (goal >= 0.8)
  encrypted_peak_rss_mb   peak resident memory (VmHWM) of a fresh process doing only one encrypted add
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.table import Table

from marketplace.sealed import JobKey, encrypted_reader
from marketplace.storage.importer import CHUNK_SIZE, Importer
from marketplace.storage.local import LocalStore

GOAL = 0.5
ENCRYPTED_GOAL = 0.8
MB = 1024 * 1024


def peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def encrypted_add(source: Path, store: Path, recipient: str) -> None:
    """What posting a confidential job does with an input file: encrypt it as it streams into the store."""
    with encrypted_reader(source, [recipient]) as ciphertext:
        LocalStore(store).add_stream(ciphertext)


def encrypted_peak_rss_mb(source: Path, store: Path) -> float:
    """The peak memory of one encrypted add on its own: a fresh interpreter running ``--encrypted-add-only``."""
    result = subprocess.run([sys.executable, __file__, "--encrypted-add-only", str(source), str(store)],
                            capture_output=True, text=True, check=True, timeout=3600)
    return float(json.loads(result.stdout)["peak_rss_mb"])


def seconds(action: Callable[[int], object], run: int) -> float:
    start = time.perf_counter()
    action(run)
    return time.perf_counter() - start


def best_seconds(runs: int, action: Callable[[int], object]) -> float:
    times = []
    for run in range(runs):
        start = time.perf_counter()
        action(run)
        times.append(time.perf_counter() - start)
    return min(times)


def measure(size_mb: int, runs: int) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="webi-bench-store-"))
    try:
        source = work / "input.bin"
        chooser = random.Random(0)  # incompressible, no repeated chunks, and the same file every run
        with source.open("wb") as out:
            for _ in range(size_mb):
                out.write(chooser.randbytes(MB))

        def sha256(_: int) -> None:
            digest = hashlib.sha256()
            with source.open("rb") as stream:
                while piece := stream.read(MB):
                    digest.update(piece)

        stores = [LocalStore(work / f"store-{run}") for run in range(runs)]
        results = {}

        def add(run: int) -> None:
            results[run] = stores[run].add_path(source)

        def cat(_: int) -> None:
            total = sum(len(part) for part in stores[0].cat(results[0].cid))
            assert total == size_mb * MB

        def write(run: int) -> None:
            folder = work / f"plain-{run}"
            folder.mkdir()
            pending: collections.deque[Future[int]] = collections.deque()
            with source.open("rb") as stream, ThreadPoolExecutor(Importer().workers) as pool:
                index = 0
                while piece := stream.read(CHUNK_SIZE):
                    pending.append(pool.submit((folder / str(index)).write_bytes, piece))
                    index += 1
                    if len(pending) > 8:  # as few pieces in memory as the importer holds
                        pending.popleft().result()

        recipient = JobKey.generate().recipient

        def add_encrypted(run: int) -> None:
            encrypted_add(source, work / f"encrypted-store-{run}", recipient)

        sha_s = best_seconds(runs, sha256)
        # Interleaved, so that both figures see the same disk: writing new files swings from run to run.
        add_times, encrypted_times = [], []
        for run in range(runs):
            add_times.append(seconds(add, run))
            encrypted_times.append(seconds(add_encrypted, run))
            shutil.rmtree(work / f"encrypted-store-{run}")
        add_s, encrypted_s = min(add_times), min(encrypted_times)
        hash_s = best_seconds(runs, lambda _: Importer().add_path(source))
        cat_s = best_seconds(runs, cat)
        peak = peak_rss_mb()
        write_s = best_seconds(runs, write)
        encrypted_peak = encrypted_peak_rss_mb(source, work / "encrypted-store-peak")
        return {
            "size_mb": size_mb,
            "sha256_mb_s": round(size_mb / sha_s, 1),
            "add_mb_s": round(size_mb / add_s, 1),
            "only_hash_mb_s": round(size_mb / hash_s, 1),
            "cat_mb_s": round(size_mb / cat_s, 1),
            "write_mb_s": round(size_mb / write_s, 1),
            "add_vs_sha256": round(sha_s / add_s, 3),
            "cat_vs_sha256": round(sha_s / cat_s, 3),
            "peak_rss_mb": round(peak, 1),
            "encrypted_add_mb_s": round(size_mb / encrypted_s, 1),
            "encrypted_add_vs_plain": round(add_s / encrypted_s, 3),
            "encrypted_peak_rss_mb": round(encrypted_peak, 1),
            "cpus": os.cpu_count() or 0,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=256, help="size of the test file in MiB")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure; the best is kept")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--encrypted-add-only", nargs=2, metavar=("FILE", "STORE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.encrypted_add_only:
        source, store = (Path(value) for value in args.encrypted_add_only)
        encrypted_add(source, store, JobKey.generate().recipient)
        print(json.dumps({"peak_rss_mb": peak_rss_mb()}))
        return 0
    figures = measure(args.size_mb, args.runs)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    table = Table("figure", "value", "goal", title=f"content store, {args.size_mb} MiB file, best of {args.runs}")
    for name, value in figures.items():
        goal = {"add_vs_sha256": GOAL, "encrypted_add_vs_plain": ENCRYPTED_GOAL}.get(name)
        table.add_row(name, f"{value:,}", f">= {goal}" if goal is not None else "")
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
