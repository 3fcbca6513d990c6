"""``webi audit`` against a real history: clean when it is, naming the discrepancy when it is not."""

from __future__ import annotations

import json
from pathlib import Path

from eth_account.signers.local import LocalAccount
from sqlmodel import Session
from typer.testing import CliRunner

from marketplace.audit import Auditor
from marketplace.chain.devnet import Devnet
from marketplace.cli.main import app
from marketplace.indexer import Indexer, create_db
from marketplace.indexer.models import JobRow
from tests.conftest import Chain
from tests.support.history import rejected_job, settle_history


def audit_cli(devnet: Devnet, deployments: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app, ["--rpc-url", devnet.anvil.rpc_url, "audit", "--deployments", str(deployments), *args]
    )
    return result.exit_code, result.output


def test_a_clean_history_passes_and_the_report_says_so(
    chain: Chain,
    devnet: Devnet,
    deployments: Path,
    tmp_path: Path,
    requester: LocalAccount,
    provider: LocalAccount,
    verifier: LocalAccount,
) -> None:
    settle_history(chain, requester, provider, verifier)
    rejected_job(chain, requester, provider, verifier)
    report = Auditor(devnet.protocol).run()
    assert report.clean, [str(item) for item in report.discrepancies]
    assert report.jobs == 4 and report.balance_checks and report.checks > 20
    code, output = audit_cli(devnet, deployments, "--report", str(tmp_path / "report"))
    assert code == 0 and "clean" in output
    saved = json.loads((tmp_path / "report" / "audit.json").read_text())
    assert saved["clean"] is True and saved["jobs"] == 4
    assert 'WEBI audit: <span class="good">clean' in (tmp_path / "report" / "audit.html").read_text()


def test_a_wrong_database_row_is_named_and_fails_the_audit(
    chain: Chain,
    devnet: Devnet,
    deployments: Path,
    tmp_path: Path,
    requester: LocalAccount,
    provider: LocalAccount,
    verifier: LocalAccount,
) -> None:
    history = settle_history(chain, requester, provider, verifier)
    engine = create_db(tmp_path / "index.db")
    Indexer(engine, devnet.client, devnet.protocol.deployment).step()
    assert Auditor(devnet.protocol, database=engine).run().clean
    with Session(engine) as session:  # plant a forged row: the indexer says the cancelled job paid out
        row = session.get(JobRow, history.cancelled)
        assert row is not None
        row.state = "finalized"
        session.add(row)
        session.commit()
    code, output = audit_cli(
        devnet, deployments, "--db", str(tmp_path / "index.db"), "--report", str(tmp_path / "report")
    )
    assert code == 1
    assert "database job state" in output and f"job {history.cancelled}" in output
    saved = json.loads((tmp_path / "report" / "audit.json").read_text())
    assert saved["clean"] is False
    assert saved["discrepancies"] == [
        {
            "check": "database job state",
            "subject": f"job {history.cancelled}",
            "expected": "cancelled",
            "found": "finalized",
        }
    ]


def test_starting_late_skips_balance_checks_and_says_so(
    chain: Chain, devnet: Devnet, deployments: Path, requester: LocalAccount
) -> None:
    chain.post(requester)
    code, output = audit_cli(devnet, deployments, "--from-block", str(chain.block_number()))
    assert code == 0 and "balance checks skipped" in output
