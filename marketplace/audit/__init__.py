"""``webi audit``: the protocol's books rebuilt from the chain alone and checked against the contracts."""

from marketplace.audit.auditor import Auditor, AuditReport, Discrepancy, Reexecutor, TaskVerdict

__all__ = ["AuditReport", "Auditor", "Discrepancy", "Reexecutor", "TaskVerdict"]
