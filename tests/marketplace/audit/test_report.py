"""``audit.json`` and ``audit.html``: the books by account and by job, in WEBI, and every check that ran."""

from __future__ import annotations

import json
from pathlib import Path

from eth_account.signers.local import LocalAccount

from marketplace.audit import Auditor
from marketplace.audit.report import write_report
from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import Devnet
from tests.conftest import Chain
from tests.support.history import challenged_job, panel_accounts, settle_history


def test_the_report_gives_the_books_by_account_and_job_in_webi_with_its_checks(
    chain: Chain,
    devnet: Devnet,
    tmp_path: Path,
    requester: LocalAccount,
    provider: LocalAccount,
    verifier: LocalAccount,
) -> None:
    history = settle_history(chain, requester, provider, verifier)
    challenged = challenged_job(chain, requester, provider, verifier)  # the provider's challenge overturns a fail
    report = Auditor(devnet.protocol).run()
    assert report.clean, [str(item) for item in report.discrepancies]
    data, page = write_report(report, tmp_path / "report")
    saved = json.loads(data.read_text())

    accounts = {account["address"]: account for account in saved["accounts"]}
    assert accounts[provider.address]["roles"] == ["provider", "challenger"]
    assert accounts[requester.address]["roles"] == ["requester"]
    assert accounts[panel_accounts()[0].address]["roles"] == ["verifier", "panel member"]
    assert accounts[devnet.protocol.market.address]["roles"][0] == "market"
    # The overturned verifier lost half its 1,000 WEBI; the withdrawn payment left its credits at the fee.
    assert accounts[verifier.address]["stakes"] == [
        {"role": "verifier", "stake": str(500 * WEI), "locked": "0", "unbonding": "0", "slashed": str(500 * WEI)}
    ]
    assert accounts[verifier.address]["credits"] == str(chain.market.credits(verifier.address))
    assert all(account["discrepancies"] == 0 for account in saved["accounts"])

    jobs = {job["job_id"]: job for job in saved["jobs"]}
    assert sorted(jobs) == [history.finalized, history.cancelled, history.open, challenged]
    finalized = jobs[history.finalized]
    assert (finalized["state"], finalized["price"], finalized["verdict"]) == ("finalized", str(20 * WEI), "pass")
    assert finalized["settlement"] == "paid on the verifier's verdict (pass)"
    assert {"account": provider.address, "kind": "provider_payment", "amount": str(19_500 * WEI // 1_000)} in \
        finalized["credits"]
    assert jobs[challenged]["settlement"] == "paid on the panel's verdict (pass)"
    assert jobs[challenged]["slashed"] == str(500 * WEI)
    assert jobs[history.cancelled]["settlement"] == "cancelled: price and audit fee refunded"
    assert jobs[history.open]["settlement"] == "escrowed (not settled)"

    checks = {check["name"]: check for check in saved["checks"]}
    assert checks["settlement split"] == {"name": "settlement split", "count": 4, "failed": 0, "passed": True}
    assert checks["token balance"]["count"] == len(saved["accounts"])
    assert {"stake", "job state", "slashes", "total supply"} <= set(checks)
    assert saved["checks_run"] == sum(check["count"] for check in saved["checks"]) > 50

    html = page.read_text()
    for heading in ("Discrepancies", "Checks run", "Accounts", "Jobs", "Verdicts overturned by a panel", "Totals"):
        assert f"<h2>{heading}</h2>" in html
    assert '<td>settlement split</td><td class="num">4</td><td class="num">0</td><td>pass</td>' in html
    # Amounts in WEBI, their wei in the tooltip (and the totals in both columns).
    assert f'<span class="amount" title="{20 * WEI} wei">20 WEBI</span>' in html
    assert f'<span class="amount" title="{19_500 * WEI // 1_000} wei">19.5 WEBI</span>' in html
    assert f'<td>{challenged}</td><td><code>{verifier.address}</code></td>' in html
    assert f'<span class="amount" title="{500 * WEI} wei">500 WEBI</span></td></tr>' in html
    assert f'<tr><td>burned</td><td class="num">423</td><td class="num"><code>{423 * WEI}</code></td></tr>' in html
    assert "(wei)" not in html
