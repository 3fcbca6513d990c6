# ruff: noqa: E501, RUF001  (an HTML template)
"""``audit.json`` and ``audit.html``: what the audit checked, the books it rebuilt, what disagreed.

The JSON is the report's data as ``AuditReport.as_dict`` gives it (amounts in wei, as decimal
strings). The page is for a person: amounts in WEBI, each with its exact wei in the tooltip (and
the totals in both columns), the checks that ran, a row per account and per job.
"""

from __future__ import annotations

import json
from pathlib import Path

from jinja2 import Environment, select_autoescape

from marketplace.audit.auditor import AuditReport
from marketplace.units import webi

_HTML = """{% macro amount(wei) %}<span class="amount" title="{{ wei }} wei">{{ wei|webi }} WEBI</span>{% endmacro %}
{% macro party(address) %}{% if address %}<code title="{{ address }}">{{ address|short }}</code>{% else %}—{% endif %}{% endmacro %}
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>WEBI audit: {{ 'clean' if report.clean else 'DISCREPANCIES' }}</title>
<style>body{font:15px/1.45 system-ui,sans-serif;margin:1.5rem;max-width:1200px}table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #ddd;vertical-align:top}.bad{color:#b91c1c}.good{color:#15803d}
code{font-family:ui-monospace,monospace;font-size:13px}.amount{white-space:nowrap}.num{text-align:right}
ul.flat{margin:0;padding-left:1rem}</style></head><body>
<h1>WEBI audit: {% if report.clean %}<span class="good">clean</span>{% else %}<span class="bad">{{ report.discrepancies|length }} discrepancies</span>{% endif %}</h1>
<p>Chain {{ report.chain_id }}, market <code>{{ report.market }}</code>, token <code>{{ report.token }}</code>;
blocks {{ report.from_block }}–{{ report.to_block }}: {{ report.events }} events, {{ report.jobs|length }} jobs, {{ report.accounts|length }} accounts,
{{ report.checks_run }} checks of {{ report.checks|length }} kinds{% if not report.balance_checks %} (balance checks skipped: the replay did not start at the token's creation){% endif %}.</p>
{% if report.skipped %}<h2>Not checked</h2><ul class="skipped">{% for line in report.skipped %}<li>{{ line }}</li>{% endfor %}</ul>{% endif %}
<h2>Discrepancies</h2>
<table class="discrepancies"><thead><tr><th>Check</th><th>Subject</th><th>Chain replay says</th><th>Found</th></tr></thead><tbody>
{% for d in report.discrepancies %}<tr class="bad"><td>{{ d.check }}</td><td><code>{{ d.subject }}</code></td><td>{{ d.expected }}</td><td>{{ d.found }}</td></tr>
{% else %}<tr><td colspan="4" class="good">None.</td></tr>{% endfor %}</tbody></table>
<h2>Checks run</h2>
<table class="checks"><thead><tr><th>Check</th><th class="num">Run</th><th class="num">Failed</th><th>Result</th></tr></thead><tbody>
{% for c in report.checks %}<tr class="{{ 'good' if c.passed else 'bad' }}"><td>{{ c.name }}</td><td class="num">{{ c.count }}</td><td class="num">{{ c.failed }}</td><td>{{ 'pass' if c.passed else 'FAIL' }}</td></tr>
{% else %}<tr><td colspan="4">None.</td></tr>{% endfor %}</tbody></table>
<h2>Accounts</h2>
<table class="accounts"><thead><tr><th>Account</th><th>Roles</th><th>Balance</th><th>Credits</th><th>Stakes</th><th>Earned{% if not report.balance_checks %} (since block {{ report.from_block }}){% endif %}</th><th class="num">Discrepancies</th></tr></thead><tbody>
{% for a in report.accounts %}<tr{% if a.discrepancies %} class="bad"{% endif %}><td><code>{{ a.address }}</code></td><td>{{ a.roles|join(", ") or "—" }}</td><td>{{ amount(a.balance) }}</td><td>{{ amount(a.credits) }}</td>
<td>{% for s in a.stakes %}<div>{{ s.role }}: {{ amount(s.stake) }}{% if s.locked != "0" %}, locked {{ amount(s.locked) }}{% endif %}{% if s.unbonding != "0" %}, unbonding {{ amount(s.unbonding) }}{% endif %}{% if s.slashed != "0" %}, slashed {{ amount(s.slashed) }}{% endif %}</div>{% else %}—{% endfor %}</td>
<td>{% for kind, wei in a.earned.items() %}<div>{{ kind }} {{ amount(wei) }}</div>{% else %}—{% endfor %}</td><td class="num">{{ a.discrepancies }}</td></tr>
{% else %}<tr><td colspan="7">None.</td></tr>{% endfor %}</tbody></table>
<h2>Jobs</h2>
<table class="jobs"><thead><tr><th>Job</th><th>State</th><th>Requester</th><th>Provider</th><th>Price</th><th>Verdict</th><th>Settlement</th><th class="num">Discrepancies</th></tr></thead><tbody>
{% for j in report.jobs %}<tr{% if j.discrepancies %} class="bad"{% endif %}><td>{{ j.job_id }}</td><td>{{ j.state }}</td><td>{{ party(j.requester) }}</td><td>{{ party(j.provider) }}</td><td>{{ amount(j.price) }}</td><td>{{ j.verdict or "—" }}</td>
<td>{{ j.settlement }}{% if j.partial_since is not none %} (posted before block {{ j.partial_since }}: its movements from then on){% endif %}<ul class="flat">{% for c in j.credits %}<li>{{ c.kind }} {{ amount(c.amount) }} to {{ party(c.account) }}</li>{% endfor %}{% if j.burned != "0" %}<li>burned {{ amount(j.burned) }}</li>{% endif %}{% if j.slashed != "0" %}<li>slashed {{ amount(j.slashed) }}</li>{% endif %}</ul></td>
<td class="num">{{ j.discrepancies }}</td></tr>
{% else %}<tr><td colspan="8">None.</td></tr>{% endfor %}</tbody></table>
<h2>Verdicts overturned by a panel</h2>
<table class="overturned"><thead><tr><th>Job</th><th>Verifier</th><th>Its verdict</th><th>Panel's verdict</th><th>Majority</th><th>Challenger</th><th>Verifier slashed</th></tr></thead><tbody>
{% for o in report.overturned %}<tr><td>{{ o.job_id }}</td><td><code>{{ o.verifier }}</code></td><td>{{ o.verdict }}</td><td>{{ o.panel_verdict }}</td><td>{{ o.votes }}</td><td><code>{{ o.challenger }}</code></td><td>{{ amount(o.slashed) }}</td></tr>
{% else %}<tr><td colspan="7">None.</td></tr>{% endfor %}</tbody></table>
<h2>Passes re-execution contradicts</h2>
<table class="contradicted"><thead><tr><th>Job</th><th>Passed by</th><th>Verifier</th><th>Failed tasks</th></tr></thead><tbody>
{% for c in report.contradicted %}<tr class="bad"><td>{{ c.job_id }}</td><td>{{ c.passed_by }}</td><td><code>{{ c.verifier }}</code></td><td>{{ c.failed|join("; ") }}</td></tr>
{% else %}<tr><td colspan="4">{{ 'None.' if report.reexecuted else 'Nothing re-executed.' }}</td></tr>{% endfor %}</tbody></table>
<h2>Re-executed tasks</h2>
<table><thead><tr><th>Job</th><th>Task</th><th>Result</th><th>Why</th></tr></thead><tbody>
{% for v in report.reexecuted %}<tr class="{{ 'good' if v.passed else 'bad' }}"><td>{{ v.job_id }}</td><td>{{ v.index }}</td><td>{{ 'pass' if v.passed else 'FAIL' }}</td><td>{{ v.reason }}</td></tr>
{% else %}<tr><td colspan="4">None requested.</td></tr>{% endfor %}</tbody></table>
<h2>Totals</h2>
<table class="totals"><thead><tr><th>Total</th><th class="num">WEBI</th><th class="num">wei</th></tr></thead><tbody>
{% for k, v in report.totals.items() %}<tr><td>{{ k }}</td><td class="num">{{ v|webi }}</td><td class="num"><code>{{ v }}</code></td></tr>{% endfor %}</tbody></table>
</body></html>
"""


def write_report(report: AuditReport, folder: Path) -> tuple[Path, Path]:
    """Writes ``audit.json`` and ``audit.html`` into ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "audit.json"
    data.write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    page = folder / "audit.html"
    environment = Environment(autoescape=select_autoescape(default=True), trim_blocks=True)
    environment.filters["webi"] = webi
    environment.filters["short"] = _short
    page.write_text(environment.from_string(_HTML).render(report=report))
    return data, page


def _short(address: str) -> str:
    """``0x1234…abcd``: the full address is in the cell's tooltip."""
    return f"{address[:6]}…{address[-4:]}" if len(address) == 42 else address
