# ruff: noqa: E501, RUF001  (an HTML template)
"""The audit report as JSON (for machines) and HTML (for people), written side by side."""

from __future__ import annotations

import json
from pathlib import Path

from jinja2 import Environment, select_autoescape

from marketplace.audit.auditor import AuditReport

_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>WEBI audit: {{ 'clean' if report.clean else 'DISCREPANCIES' }}</title>
<style>body{font:15px/1.45 system-ui,sans-serif;margin:1.5rem;max-width:1100px}table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #ddd}.bad{color:#b91c1c}.good{color:#15803d}
code{font-family:ui-monospace,monospace;font-size:13px}</style></head><body>
<h1>WEBI audit: {% if report.clean %}<span class="good">clean</span>{% else %}<span class="bad">{{ report.discrepancies|length }} discrepancies</span>{% endif %}</h1>
<p>Chain {{ report.chain_id }}, market <code>{{ report.market }}</code>, token <code>{{ report.token }}</code>;
blocks {{ report.from_block }}–{{ report.to_block }}: {{ report.events }} events, {{ report.jobs }} jobs, {{ report.accounts }} accounts,
{{ report.checks }} checks{% if not report.balance_checks %} (balance checks skipped: the replay did not start at the token's creation){% endif %}.</p>
<h2>Discrepancies</h2>
<table><thead><tr><th>Check</th><th>Subject</th><th>Chain replay says</th><th>Found</th></tr></thead><tbody>
{% for d in report.discrepancies %}<tr class="bad"><td>{{ d.check }}</td><td><code>{{ d.subject }}</code></td><td>{{ d.expected }}</td><td>{{ d.found }}</td></tr>
{% else %}<tr><td colspan="4" class="good">None.</td></tr>{% endfor %}</tbody></table>
<h2>Verdicts overturned by a panel</h2>
<table class="overturned"><thead><tr><th>Job</th><th>Verifier</th><th>Its verdict</th><th>Panel's verdict</th><th>Majority</th><th>Challenger</th><th>Verifier slashed (wei)</th></tr></thead><tbody>
{% for o in report.overturned %}<tr><td>{{ o.job_id }}</td><td><code>{{ o.verifier }}</code></td><td>{{ o.verdict }}</td><td>{{ o.panel_verdict }}</td><td>{{ o.votes }}</td><td><code>{{ o.challenger }}</code></td><td><code>{{ o.slashed }}</code></td></tr>
{% else %}<tr><td colspan="7">None.</td></tr>{% endfor %}</tbody></table>
<h2>Passes re-execution contradicts</h2>
<table class="contradicted"><thead><tr><th>Job</th><th>Passed by</th><th>Verifier</th><th>Failed tasks</th></tr></thead><tbody>
{% for c in report.contradicted %}<tr class="bad"><td>{{ c.job_id }}</td><td>{{ c.passed_by }}</td><td><code>{{ c.verifier }}</code></td><td>{{ c.failed|join("; ") }}</td></tr>
{% else %}<tr><td colspan="4">{{ 'None.' if report.reexecuted else 'Nothing re-executed.' }}</td></tr>{% endfor %}</tbody></table>
<h2>Re-executed tasks</h2>
<table><thead><tr><th>Job</th><th>Task</th><th>Result</th><th>Why</th></tr></thead><tbody>
{% for v in report.reexecuted %}<tr class="{{ 'good' if v.passed else 'bad' }}"><td>{{ v.job_id }}</td><td>{{ v.index }}</td><td>{{ 'pass' if v.passed else 'FAIL' }}</td><td>{{ v.reason }}</td></tr>
{% else %}<tr><td colspan="4">None requested.</td></tr>{% endfor %}</tbody></table>
<h2>Totals (wei)</h2>
<table>{% for k, v in report.totals.items() %}<tr><td>{{ k }}</td><td><code>{{ v }}</code></td></tr>{% endfor %}</table>
</body></html>
"""


def write_report(report: AuditReport, folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "audit.json"
    data.write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    page = folder / "audit.html"
    template = Environment(autoescape=select_autoescape(default=True)).from_string(_HTML)
    page.write_text(template.render(report=report))
    return data, page
