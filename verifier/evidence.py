"""Evidence documents (version 2): what a verdict, a panel vote or a watchtower's re-check rests on.

Stored in the content store before the transaction it explains, so that a challenger, a panel
member or an auditor can see why. Every kind records the same judgement (``judgement``): the
sampled tasks and where their outputs came from, for each task the outcome and the provider against
both references and the references against each other (the metric and the reason of each
comparison), the rule applied, the thresholds, both references and the runtime.

- ``webi-audit-evidence`` (``document``): the drawn verifier's audit, named by its CID in
  ``submitVerdict``; also the draw and its seed.
- ``webi-panel-evidence`` and ``webi-watch-evidence`` (``recheck_document``): a panel member's vote
  and a watchtower's re-check, with the fields their duty adds (the seats, the first verdict, ...).

Version 2 added the second reference, the per-task outcome (pass, fail, inconclusive), the rule
and the outputs' source (``outputs_source``: ``store``, ``chain`` or, for a re-check that found
neither, ``unavailable``); ``checks[*].passed`` and ``metric`` mean what they did in 1.
"""

from __future__ import annotations

import json
import platform
import re
from dataclasses import dataclass
from typing import Any

import torch

from marketplace.protocol import Audit, Verdict
from marketplace.storage import ContentStore
from verifier import tolerance
from verifier.verdict import RULE, References, SampleAudit

VERSION = 2


def thresholds() -> dict[str, float]:
    """The rule's numbers (``verifier.tolerance``): each task's own allowance is in its entry."""
    return {"embed_min_cosine": tolerance.EMBED_MIN_COSINE,
            "classify_prob_tolerance": tolerance.CLASSIFY_PROB_TOLERANCE,
            "near_tie_logits": tolerance.NEAR_TIE_LOGITS, "near_tie_budget": tolerance.NEAR_TIE_BUDGET,
            "near_tie_floor": tolerance.NEAR_TIE_FLOOR, "noise_multiple": tolerance.NOISE_MULTIPLE,
            "embed_floor": tolerance.EMBED_FLOOR, "classify_floor": tolerance.CLASSIFY_FLOOR,
            "logit_floor": tolerance.LOGIT_FLOOR}


@dataclass(frozen=True)
class AuditFacts:
    """What identifies the audited submission."""

    job_id: int
    provider: str
    verifier: str
    spec_cid: str
    output_cid: str
    result_root: str  # hex, no prefix


def judgement(sample: SampleAudit, references: References) -> dict[str, Any]:
    """The part every evidence kind shares: the sample, each task's outcome by the rule, and the references."""
    device = references.a.devices[0]
    verdict = sample.verdict
    return {
        "sampled_tasks": sample.sampled, "outputs_source": sample.outputs_source,
        "inputs_unusable": sample.inputs_unusable,
        "verdict": verdict.name.lower(), "passed": verdict is not Verdict.FAIL, "rule": RULE,
        "outcomes": {outcome: sum(1 for task in sample.tasks if task.outcome.value == outcome)
                     for outcome in ("pass", "fail", "inconclusive")},
        "checks": [task.as_dict() for task in sample.tasks],
        "thresholds": thresholds(),
        "references": references.describe(),
        "runtime": {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                    "dtype": str(references.a.dtype_for(device)).removeprefix("torch."),
                    "torch": torch.__version__, "python": platform.python_version()},
    }


def document(facts: AuditFacts, audit: Audit, sample: SampleAudit, references: References) -> dict[str, Any]:
    """The drawn verifier's ``webi-audit-evidence``."""
    return {
        "kind": "webi-audit-evidence", "version": VERSION, "job_id": facts.job_id, "provider": facts.provider,
        "verifier": facts.verifier, "spec": facts.spec_cid, "outputs": facts.output_cid,
        "result_root": "0x" + facts.result_root, "draw": audit.draws, "seed": "0x" + audit.seed.hex(),
        **judgement(sample, references),
    }


def recheck_document(kind: str, job_id: int, spec_cid: str, output_cid: str, result_root: str,
                     sample: SampleAudit, references: References, **fields: Any) -> dict[str, Any]:
    """A re-check's evidence (``kind``: ``webi-panel-evidence`` or ``webi-watch-evidence``), plus ``fields``."""
    return {"kind": kind, "version": VERSION, "job_id": job_id, "spec": spec_cid, "outputs": output_cid,
            "result_root": "0x" + result_root, "conclusive": sample.conclusive, **judgement(sample, references),
            **fields}


# A quoted value in a reason ("label 'positive', recomputed 'negative'"): a confidential job's output.
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def redacted(evidence: dict[str, Any]) -> dict[str, Any]:
    """A confidential job's evidence: the same document without a plaintext value in it.

    The judgement of a job keeps no inputs, outputs or reference values anyway (indices, outcomes,
    metrics and allowances, reasons, CIDs); what a reason quotes (a label, a parser's excerpt) is
    replaced, and so is the text of an unusable-inputs error. ``confidential: true`` says so.
    """
    def scrub(value: Any) -> Any:
        if isinstance(value, str):
            return _QUOTED.sub("<sealed>", value)
        if isinstance(value, dict):
            return {key: scrub(item) for key, item in value.items()}
        if isinstance(value, list):
            return [scrub(item) for item in value]
        return value

    clear = {key: value for key, value in evidence.items() if key not in ("checks", "inputs_unusable")}
    return {**clear, "confidential": True, "checks": scrub(evidence.get("checks", [])),
            "inputs_unusable": "the job's sealed inputs are unusable" if evidence.get("inputs_unusable") else ""}


def publish(store: ContentStore, evidence: dict[str, Any]) -> str:
    """Stores an evidence document (canonical JSON); its CID."""
    return str(store.add_bytes(json.dumps(evidence, sort_keys=True).encode()).cid)
