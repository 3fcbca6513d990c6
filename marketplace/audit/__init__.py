"""``webi audit``: the protocol's books rebuilt from the chain alone and checked against the contracts."""

from marketplace.audit.auditor import Auditor, AuditReport, Discrepancy, NotReexecutedError, Reexecutor
from marketplace.audit.findings import ContradictedPass, OverturnedVerdict, TaskVerdict

__all__ = [
    "AuditReport", "Auditor", "ContradictedPass", "Discrepancy", "NotReexecutedError", "OverturnedVerdict",
    "Reexecutor", "TaskVerdict",
]
