"""A daemon journal written before a column existed opens, gains the column with its default, and
keeps its rows: an operator upgrading a verifier in place resumes where it stopped."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from marketplace.chain.devnet import mine, revert, snapshot
from marketplace.journal import REORG_REWIND_BLOCKS, block_hash
from provider.journal import Journal
from tests.conftest import Chain
from verifier.panels import PanelJournal, PanelStage


def test_an_older_panel_journal_gains_the_new_column_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "panels.sqlite"
    with sqlite3.connect(path) as old:  # the schema before the evidence column (kept until our reveal)
        old.execute("CREATE TABLE verifier_panels (job_id INTEGER PRIMARY KEY, stage VARCHAR NOT NULL, "
                    "challenger VARCHAR NOT NULL, seats INTEGER NOT NULL, vote INTEGER NOT NULL, "
                    "evidence_cid VARCHAR NOT NULL, outcome VARCHAR NOT NULL, reason VARCHAR NOT NULL, "
                    "attempts INTEGER NOT NULL, retry_at FLOAT NOT NULL, updated_at DATETIME NOT NULL)")
        old.execute("INSERT INTO verifier_panels VALUES (7, 'COMMITTED', '0xabc', 1, 2, '', '', '', 0, 0.0, "
                    "'2026-12-01 00:00:00')")
    journal = PanelJournal(path)
    try:
        record = journal.get(7)
        assert record is not None and record.stage == PanelStage.COMMITTED and record.vote == 2
        assert record.evidence == ""  # the new column, at its default
        assert journal.update(7, evidence='{"vote": "pass"}').evidence == '{"vote": "pass"}'
    finally:
        journal.close()
    with sqlite3.connect(path) as reopened:
        columns = [row[1] for row in reopened.execute("PRAGMA table_info(verifier_panels)")]
    assert "evidence" in columns and columns.count("evidence") == 1


def _open_journal(path: str) -> str:
    """Opens the provider journal at ``path`` in a fresh process; the error's text if it fails."""
    from provider.journal import Journal
    try:
        Journal(Path(path)).close()
    except Exception as error:  # the test reports what went wrong
        return repr(error)
    return ""


def test_processes_opening_a_new_journal_at_once_all_succeed(tmp_path: Path) -> None:
    """A status command opening the journal while the daemon creates it once killed the daemon with
    "table provider_jobs already exists": create_all's check-then-create is not atomic across processes."""
    import multiprocessing

    paths = [str(tmp_path / f"journal-{n}.sqlite") for n in range(10)]
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        errors = pool.map(_open_journal, [path for path in paths for _ in range(4)])
    assert errors == [""] * len(errors)
    for path in paths:
        with sqlite3.connect(path) as db:
            assert db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'provider_jobs'").fetchone() == (1,)


def test_a_reorg_under_the_cursor_rescans_the_blocks_it_replaced(chain: Chain, requester, tmp_path: Path) -> None:
    # Found by scripts/chaos.py: after anvil restarted from an older state, a verifier's scan had passed the block
    # numbers where the new chain put a result submission, never saw it, and the job waited forever for an audit.
    client = chain.client
    journal = Journal(tmp_path / "journal.sqlite")
    try:
        fork = snapshot(client)
        mine(client, 3)
        head = int(client.w3.eth.block_number)
        journal.record_posted([], head, block_hash(client, head))
        assert journal.scan_start(client, 1) == head + 1  # the same chain: on after the cursor
        revert(client, fork)
        assert block_hash(client, head) == ""  # rewound below the cursor: no such block yet
        assert journal.scan_start(client, 1) == max(1, head - REORG_REWIND_BLOCKS)
        job_id = chain.post(requester)  # the new branch: a job at a block number the scan had passed
        mine(client, 3)
        assert block_hash(client, head) != journal.cursor_hash()
        start = journal.scan_start(client, 1)
        assert start == max(1, head - REORG_REWIND_BLOCKS)
        posted = [event["args"]["jobId"] for event in client.events(chain.market.contract, start)
                  if event["event"] == "JobPosted"]
        assert job_id in posted
    finally:
        journal.close()


def test_a_cursor_an_older_webi_wrote_without_a_hash_scans_on(chain: Chain, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    try:
        journal.record_posted([], 5)
        assert journal.cursor_hash() == ""
        assert journal.scan_start(chain.client, 1) == 6
    finally:
        journal.close()
