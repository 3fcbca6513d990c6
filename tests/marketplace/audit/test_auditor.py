"""``webi audit`` against a real history: clean when it is, naming the discrepancy when it is not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from sqlmodel import Session
from typer.testing import CliRunner

from marketplace.audit import Auditor, OverturnedVerdict, TaskVerdict
from marketplace.audit.report import write_report
from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import Devnet
from marketplace.cli.main import app
from marketplace.history import ChainEvent, JobView
from marketplace.indexer import Indexer, create_db
from marketplace.indexer.models import JobRow
from marketplace.protocol import CreditKind, Role, sampled_task_indices
from tests.conftest import Chain
from tests.support.history import challenged_job, eventful_history, rejected_job, settle_history


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
    challenged = challenged_job(chain, requester, provider, verifier)
    report = Auditor(devnet.protocol).run()
    assert report.clean, [str(item) for item in report.discrepancies]
    # The panel (one judge on every seat) overturned the verifier's fail: half its 1,000 stake.
    assert report.overturned == [OverturnedVerdict(
        challenged, verifier.address, "fail", "pass", provider.address, "3 of 3 seats", str(500 * WEI))]
    assert len(report.jobs) == 5 and report.balance_checks and report.checks_run > 100
    # Rejected: 9 of the 10 collateral burned; overturned: 500 slashed, 30 (the bond) to the panel, 47 to the
    # challenger (10 % of the rest), 423 burned.
    assert int(report.totals["burned"]) == chain.market.burned() == (9 + 423) * WEI
    assert int(report.totals["escrow"]) == 7 * WEI + 7 * WEI // 2 and report.totals["bonds"] == "0"
    code, output = audit_cli(devnet, deployments, "--report", str(tmp_path / "report"))
    assert code == 0 and "clean" in output
    assert f"job {challenged}: the panel overturned {verifier.address}'s fail" in " ".join(output.split())
    saved = json.loads((tmp_path / "report" / "audit.json").read_text())
    assert saved["clean"] is True and len(saved["jobs"]) == 5
    assert [item["job_id"] for item in saved["overturned"]] == [challenged] and saved["contradicted"] == []
    page = (tmp_path / "report" / "audit.html").read_text()
    assert 'WEBI audit: <span class="good">clean' in page
    assert "Verdicts overturned by a panel" in page and f"<td>{challenged}</td><td><code>{verifier.address}" in page


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
            "job_id": history.cancelled,
            "account": None,
            "row": {"table": "jobs", "key": str(history.cancelled), "column": "state"},
        }
    ]


def test_starting_late_skips_balance_checks_and_says_so(
    chain: Chain, devnet: Devnet, deployments: Path, requester: LocalAccount
) -> None:
    chain.post(requester)
    code, output = audit_cli(devnet, deployments, "--from-block", str(chain.block_number()))
    assert code == 0 and "balance checks skipped" in output


def test_every_path_of_the_protocol_reconciles_to_the_wei(
    chain: Chain,
    devnet: Devnet,
    requester: LocalAccount,
    provider: LocalAccount,
    verifier: LocalAccount,
    stranger: LocalAccount,
) -> None:
    history = eventful_history(chain, requester, provider, verifier, stranger)
    report = Auditor(devnet.protocol).run()
    assert report.clean, [str(item) for item in report.discrepancies]
    assert len(report.jobs) == 9 + 3 and int(report.totals["burned"]) == chain.market.burned() > 0  # 3: the group
    assert int(report.totals["reward"]) > 0 and int(report.totals["panel_fee"]) == 2 * 30 * WEI
    assert int(report.totals["bond_refund"]) == 3 * 30 * WEI  # dismissed, overturned, undecided
    assert history.cancelled not in (history.revealed, history.unvoted)


@pytest.mark.parametrize(
    ("lost", "checks"),
    [
        ("a panel fee", {"settlement split", "withdrawable credits"}),
        ("the burn", {"burned"}),
        # Not the draw weight: it follows the stake only at a sync (WeightChanged), which nobody lost.
        ("the verifier's slash", {"slashes", "stake"}),
    ],
)
def test_a_lost_event_is_named_where_the_books_stop_adding_up(
    chain: Chain,
    devnet: Devnet,
    dropping: list[Any],
    requester: LocalAccount,
    provider: LocalAccount,
    verifier: LocalAccount,
    lost: str,
    checks: set[str],
) -> None:
    settle_history(chain, requester, provider, verifier)
    job = challenged_job(chain, requester, provider, verifier)
    match = {
        "a panel fee": lambda e: e.name == "Credited" and e.args["kind"] == CreditKind.PANEL_FEE,
        "the burn": lambda e: e.name == "Burned",
        "the verifier's slash": lambda e: e.name == "Slashed" and e.args["role"] == Role.VERIFIER,
    }[lost]
    dropped: list[ChainEvent] = []

    def drop(event: ChainEvent) -> bool:
        if event.job_id == job and match(event) and not dropped:
            dropped.append(event)
            return True
        return False

    dropping.append(drop)
    report = Auditor(devnet.protocol).run()
    assert len(dropped) == 1
    found = {(item.check, item.subject) for item in report.discrepancies}
    conservation = "market holdings = stakes + unbonding + credits + fees + escrow + bonds + burned"
    assert (conservation, chain.market.address) in found  # the contract holds wei the replay cannot place
    assert {check for check, _ in found} - {conservation} == checks
    assert any(subject == f"job {job}" for _, subject in found), found


def test_reexecution_takes_the_tasks_the_audit_sampled(
    chain: Chain, devnet: Devnet, requester: LocalAccount, provider: LocalAccount, verifier: LocalAccount
) -> None:
    history = settle_history(chain, requester, provider, verifier)
    asked: list[tuple[int, list[int]]] = []

    def reexecute(job: JobView, indices: list[int]) -> list[TaskVerdict]:
        asked.append((job.job_id, indices))
        return [TaskVerdict(job.job_id, index, True, "same output") for index in indices]

    report = Auditor(devnet.protocol, reexecutor=reexecute).run(reexecute=3, seed=7)
    sampled = sampled_task_indices(chain.market.audit_of(history.finalized).secret, 16, 4)
    assert report.clean and len(report.reexecuted) == 3
    assert [job_id for job_id, _ in asked] == [history.finalized] and set(asked[0][1]) < set(sampled)
    assert len(Auditor(devnet.protocol, reexecutor=reexecute).run(reexecute=10, seed=7).reexecuted) == len(sampled)
    assert report.contradicted == []


def test_a_pass_that_reexecution_contradicts_is_named_with_who_passed_it(
    chain: Chain,
    devnet: Devnet,
    tmp_path: Path,
    requester: LocalAccount,
    provider: LocalAccount,
    verifier: LocalAccount,
) -> None:
    history = settle_history(chain, requester, provider, verifier)
    rejected = rejected_job(chain, requester, provider, verifier)  # a fail: re-executing it is not asked
    overturned = challenged_job(chain, requester, provider, verifier)  # passed by the panel
    wrong = {history.finalized: 1, overturned: 2}  # how many sampled tasks re-execute differently, by job

    def reexecute(job: JobView, indices: list[int]) -> list[TaskVerdict]:
        return [TaskVerdict(job.job_id, index, position >= wrong[job.job_id], "same output" if position >=
                            wrong[job.job_id] else "embedding differs") for position, index in enumerate(indices)]

    report = Auditor(devnet.protocol, reexecutor=reexecute).run(reexecute=8, seed=3)
    assert {verdict.job_id for verdict in report.reexecuted} == {history.finalized, overturned}
    assert not report.clean and report.discrepancies == []  # the books add up; the work does not
    found = {item.job_id: item for item in report.contradicted}
    assert set(found) == {history.finalized, overturned} and rejected not in found
    assert (found[history.finalized].passed_by, found[history.finalized].verifier) == ("the verifier", verifier.address)
    assert found[overturned].passed_by == "the panel"
    for job_id, item in found.items():
        failed = sorted(v.index for v in report.reexecuted if v.job_id == job_id and not v.passed)
        assert item.failed == [f"task {index}: embedding differs" for index in failed] and len(failed) == wrong[job_id]
    _, page = write_report(report, tmp_path / "report")
    assert page.read_text().count("embedding differs") >= 2 * 3  # each failed task, in both sections
