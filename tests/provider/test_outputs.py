"""The provider's own copy of its committed outputs, the reveal built from it, and the journal's upgrade."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from marketplace.errors import ContentError
from marketplace.results import MerkleTree, output_manifest, verify_proof
from marketplace.storage.local import LocalStore
from provider.journal import Journal, Stage
from provider.outputs import OutputArchive, committed_outputs
from provider.reveals import reveal_payload

OUTPUTS = [f'{{"embedding":[{i}.0]}}'.encode() for i in range(5)]


def test_the_archive_copy_is_used_and_a_damaged_one_falls_back_to_the_store(tmp_path: Path) -> None:
    archive, store = OutputArchive(tmp_path / "outputs"), LocalStore(tmp_path / "store")
    root = MerkleTree(OUTPUTS).root
    cid = str(store.add_bytes(output_manifest(OUTPUTS)).cid)
    archive.keep(7, output_manifest(OUTPUTS))
    assert committed_outputs(7, root, 5, archive, store, "")[0] == OUTPUTS, "no store needed"
    archive.keep(7, output_manifest(list(reversed(OUTPUTS))))  # damaged: another order
    outputs, tree = committed_outputs(7, root, 5, archive, store, cid)
    assert outputs == OUTPUTS and tree.root == root
    with pytest.raises(ContentError, match="does not rebuild the committed root"):
        committed_outputs(7, root, 5, archive, store, "")
    archive.drop(7)
    with pytest.raises(ContentError, match="the committed outputs are not available"):
        committed_outputs(7, root, 5, archive, store, "")
    assert not archive.path(7).exists() and list(archive.folder.iterdir()) == []


def test_a_reveal_carries_the_sampled_outputs_in_the_sample_order_with_valid_proofs() -> None:
    tree = MerkleTree(OUTPUTS)
    reveal = reveal_payload(OUTPUTS, tree, [3, 0, 4])
    assert reveal.outputs == (OUTPUTS[3], OUTPUTS[0], OUTPUTS[4])
    assert all(verify_proof(tree.root, index, output, proof)
               for index, output, proof in zip(reveal.indices, reveal.outputs, reveal.proofs, strict=True))
    with pytest.raises(ValueError, match="sampled task 5 is outside the job's 5 tasks"):
        reveal_payload(OUTPUTS, tree, [5])


def test_an_older_journal_gains_the_new_columns_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with sqlite3.connect(path) as connection:  # the table as the previous release created it
        connection.execute(
            "CREATE TABLE provider_jobs (job_id INTEGER PRIMARY KEY, stage VARCHAR(9) NOT NULL, reason VARCHAR NOT "
            "NULL, spec_cid VARCHAR NOT NULL, output_cid VARCHAR NOT NULL, result_root VARCHAR NOT NULL, claim_tx "
            "VARCHAR NOT NULL, submit_tx VARCHAR NOT NULL, num_tasks INTEGER NOT NULL, price_wei VARCHAR NOT NULL, "
            "earned_wei VARCHAR NOT NULL, attempts INTEGER NOT NULL, retry_at FLOAT NOT NULL, updated_at DATETIME "
            "NOT NULL)")
        connection.execute("INSERT INTO provider_jobs VALUES (1, 'SUBMITTED', '', 'spec', 'out', 'ab', '0x1', '0x2', "
                           "8, '10', '0', 0, 0, '2025-01-01 00:00:00')")
    journal = Journal(path)
    try:
        record = journal.get(1)
        assert record is not None and record.stage == Stage.SUBMITTED and record.submit_tx == "0x2"
        assert (record.reveal_tx, record.challenge_tx, record.appeal) == ("", "", "")
        journal.update(1, stage=Stage.APPEALING, appeal="challenged: ok")
        assert journal.get(1).appeal == "challenged: ok"
    finally:
        journal.close()
    reopened = Journal(path)  # nothing left to add the second time
    try:
        assert reopened.get(1).stage == Stage.APPEALING
    finally:
        reopened.close()
