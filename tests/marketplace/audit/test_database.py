"""``webi audit --db``: a forged ledger row is named by its row, not lost in a total."""

from __future__ import annotations

import json
import re
from pathlib import Path

from eth_account.signers.local import LocalAccount
from sqlmodel import Session, select
from typer.testing import CliRunner

from marketplace.audit import Auditor
from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import Devnet
from marketplace.cli.main import app
from marketplace.indexer import Indexer, create_db
from marketplace.indexer.models import LedgerRow
from tests.conftest import Chain
from tests.support.history import settle_history


def test_forged_ledger_rows_are_named_row_by_row(
    database: str,
    chain: Chain,
    devnet: Devnet,
    deployments: Path,
    tmp_path: Path,
    requester: LocalAccount,
    provider: LocalAccount,
    verifier: LocalAccount,
    stranger: LocalAccount,
) -> None:
    history = settle_history(chain, requester, provider, verifier)
    engine = create_db(database)
    Indexer(engine, devnet.client, devnet.protocol.deployment).step()
    with Session(engine) as session:
        rows = {row.kind: row for row in session.exec(select(LedgerRow)).all() if row.job_id == history.finalized}
    payment, fee = rows["provider_payment"], rows["verifier_fee"]
    report = Auditor(devnet.protocol, database=engine).run()
    assert report.clean, [str(item) for item in report.discrepancies]
    tallies = {tally.name: tally.count for tally in report.checks}
    assert tallies["database ledger amount"] == 5  # 4 credits and a withdrawal
    # From a later block, only the rows of its blocks are compared, and they agree.
    late = Auditor(devnet.protocol, database=engine, from_block=payment.block_number).run()
    assert late.clean, [str(item) for item in late.discrepancies]

    with Session(engine) as session:
        # One WEBI moved from the verifier's fee to the provider's payment: the total credited is unchanged.
        for row, change in ((payment, WEI), (fee, -WEI)):
            stored = session.get(LedgerRow, (row.block_number, row.log_index))
            assert stored is not None
            stored.amount = str(int(stored.amount) + change)
            session.add(stored)
        # And a reward no event paid, in the settlement's transaction.
        session.add(LedgerRow(block_number=payment.block_number, log_index=99, tx_hash=payment.tx_hash,
                              account=stranger.address, job_id=history.finalized, kind="reward", amount=str(5 * WEI)))
        session.commit()
    engine.dispose()

    result = CliRunner().invoke(app, ["--rpc-url", devnet.anvil.rpc_url, "audit", "--deployments", str(deployments),
                                      "--db", database, "--report", str(tmp_path / "report")],
                                env={"COLUMNS": "400"})
    assert result.exit_code == 1
    # Printed whole: the row's transaction hash and log index, both amounts.
    assert f"ledger row {payment.tx_hash}:{payment.log_index} (block {payment.block_number}" in result.output
    assert re.search(rf"{int(payment.amount)}\s*│\s*{int(payment.amount) + WEI}\s*│", result.output)
    saved = json.loads((tmp_path / "report" / "audit.json").read_text())

    def named(row: LedgerRow, found: str) -> dict[str, object]:
        key = f"{row.tx_hash}:{row.log_index}"
        return {
            "check": "database ledger amount",
            "subject": f"ledger row {key} (block {row.block_number}, job {history.finalized}, {row.kind})",
            "expected": row.amount,
            "found": found,
            "job_id": history.finalized,
            "account": row.account,
            "row": {"table": "ledger", "key": key, "column": "amount"},
        }

    extra = f"{payment.tx_hash}:99"
    assert saved["discrepancies"] == [
        named(payment, str(int(payment.amount) + WEI)),
        named(fee, str(int(fee.amount) - WEI)),
        {
            "check": "database ledger row",
            "subject": f"ledger row {extra} (block {payment.block_number}, job {history.finalized}, reward)",
            "expected": "no such event on-chain",
            "found": f"reward {5 * WEI} wei (5 WEBI) to {stranger.address}",
            "job_id": history.finalized,
            "account": stranger.address,
            "row": {"table": "ledger", "key": extra, "column": None},
        },
    ]
    checks = {item["name"]: item for item in saved["checks"]}
    assert checks["database ledger amount"] == {"name": "database ledger amount", "count": 5, "failed": 2,
                                                "passed": False}
    page = (tmp_path / "report" / "audit.html").read_text()
    assert f"ledger row {extra}" in page and f"ledger row {payment.tx_hash}:{payment.log_index}" in page
    jobs = {job["job_id"]: job for job in saved["jobs"]}
    assert jobs[history.finalized]["discrepancies"] == 3 and jobs[history.cancelled]["discrepancies"] == 0
