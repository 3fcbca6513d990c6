"""A daemon journal written before a column existed opens, gains the column with its default, and
keeps its rows: an operator upgrading a verifier in place resumes where it stopped."""

from __future__ import annotations

import sqlite3
from pathlib import Path

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
