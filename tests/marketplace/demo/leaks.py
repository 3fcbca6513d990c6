"""Where a demo run could leak a confidential job's plaintext, searched byte for byte.

The demo test runs the demo once with a canary as the confidential job's first input
(``marketplace.demo.options.CANARY_ENV``), opens the job's results as its requester, and hands the
canary and a piece of the decrypted output to ``leaks``: every file under the run folder (the node's
content store and SQLite index, each daemon's state folder, every log), every text or blob cell of
every SQLite table, and the dashboard's and the API's pages for the job.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from marketplace.client import Client
from marketplace.requester_keys import RequesterKeys
from marketplace.results import canonical
from marketplace.sealed.envelope import open_sealed
from marketplace.storage.cid import Cid

SQLITE_HEADER = b"SQLite format 3\x00"


@dataclass(frozen=True)
class Opened:
    """What the requester reads of the confidential job: its plaintext inputs manifest and outputs; and its public
    twin's outputs, which the store holds in clear (the search must find those)."""

    inputs: bytes
    outputs: list[bytes]  # canonical, in task order
    twin_outputs: list[bytes]


def open_as_requester(run_dir: Path, demo_log: str, dashboard: str, job_id: int, twin: int) -> Opened:
    """The job's inputs and outputs, opened with the requester's party key from the run folder, and ``twin``'s."""
    rpc_url = re.search(r"anvil at (http://127\.0\.0\.1:\d+)", demo_log)
    assert rpc_url is not None, demo_log
    keystore = next((run_dir / "secrets").glob("requester-*.json"))
    keys = RequesterKeys(keystore, (run_dir / "secrets" / "password").read_text().strip())
    with Client.connect(rpc_url.group(1), dashboard, deployments_dir=run_dir / "deployments", keys=keys) as client:
        job_key = client.job_key(job_id)
        assert job_key is not None, "the job is confidential on-chain"
        sealed = client.store.read_bytes(Cid.parse(client.spec(job_id).inputs), limit=1024**2)
        inputs = open_sealed(sealed, job_key, "the inputs manifest")
        outputs = [canonical(result) for result in client.results(job_id)]
        twin_outputs = [canonical(result) for result in client.results(twin)]
    return Opened(inputs, outputs, twin_outputs)


def files(folder: Path) -> Iterator[Path]:
    yield from (path for path in sorted(folder.rglob("*")) if path.is_file() and not path.is_symlink())


def sqlite_cells(path: Path) -> Iterator[tuple[str, bytes]]:
    """Every text and blob cell of every table of the SQLite file at ``path``, as ``(table.column, bytes)``."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            cursor = db.execute(f'SELECT * FROM "{table}"')  # table names from sqlite_master
            columns = [column[0] for column in cursor.description]
            for row in cursor:
                for column, value in zip(columns, row, strict=True):
                    if isinstance(value, str):
                        yield f"{table}.{column}", value.encode()
                    elif isinstance(value, bytes):
                        yield f"{table}.{column}", value


def leaks(secrets: dict[str, bytes], run_dir: Path, extra_logs: list[Path], dashboard: str,
          job_id: int) -> tuple[list[str], dict[str, Any]]:
    """Where each of ``secrets`` (name -> bytes) was found, one line a finding, and what was searched."""
    found: list[str] = []
    searched: dict[str, Any] = {"files": 0, "sqlite files": 0, "sqlite cells": 0, "pages": 0}

    def search(where: str, data: bytes) -> None:
        found.extend(f"{name} in {where}" for name, secret in secrets.items() if secret in data)

    for path in [*files(run_dir), *extra_logs]:
        data = path.read_bytes()
        searched["files"] += 1
        search(str(path), data)
        if data.startswith(SQLITE_HEADER):
            searched["sqlite files"] += 1
            for where, cell in sqlite_cells(path):
                searched["sqlite cells"] += 1
                search(f"{path}: {where}", cell)
    for page in (f"{dashboard}/jobs/{job_id}", f"{dashboard}/v1/jobs/{job_id}", f"{dashboard}/jobs",
                 f"{dashboard}/v1/jobs"):
        response = httpx.get(page, timeout=10)
        assert response.status_code == 200, page
        searched["pages"] += 1
        search(page, response.content)
    return found, searched
