"""Appealing a failed verdict: re-check our own outputs, and challenge only when they hold up.

A fail slashes the provider's collateral once the challenge window is over. A dishonest or broken
verifier can fail honest work, and the provider is the side the verdict harms, so it may challenge
(bond: ``3 · auditFee``) and let a stake-weighted panel decide. Challenging blindly would be wrong
too: a provider whose outputs really were wrong (a hardware fault, a corrupted run) loses the bond
to the panel. So the daemon re-executes the sampled tasks (public once the verdict is in) with its
own runtime and compares them with what it committed, with the verifier's comparator and
tolerances (``verifier.compare``); it challenges only when every sampled task is within them.

The verifier's evidence document is read when it can be (best effort: a verifier that fails honest
work may well point at nothing), for the log and the journal, never to decide.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from web3.types import TxReceipt

from marketplace.chain.market import JobMarket
from marketplace.chain.token import WebiToken
from marketplace.errors import WebiError
from marketplace.jobspec import JobSpec
from marketplace.output_json import parse_document
from marketplace.protocol import JobTerms
from marketplace.storage import Cid, ContentStore
from provider.runtime import Runtime
from verifier.task_check import TaskCheck
from verifier.verdict import audit_tasks

log = logging.getLogger(__name__)
MAX_EVIDENCE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Review:
    """Our re-check of the sampled tasks against what we committed."""

    checks: tuple[TaskCheck, ...]

    @property
    def holds(self) -> bool:
        """Every sampled task within the comparator's tolerances: the verdict is worth challenging."""
        return bool(self.checks) and all(check.passed for check in self.checks)

    def summary(self) -> str:
        failed = [check for check in self.checks if not check.passed]
        if not failed:
            return f"all {len(self.checks)} sampled tasks re-checked within tolerance"
        first = failed[0]
        return (f"{len(failed)} of {len(self.checks)} sampled tasks differ from our own re-execution "
                f"(task {first.index}: {first.reason})")


def review(runtime: Runtime, spec: JobSpec, inputs: list[str], outputs: Sequence[bytes],
           indices: Sequence[int]) -> Review:
    """Re-executes the sampled tasks and compares them with the committed ``outputs``."""
    committed = {index: outputs[index] for index in indices}
    return Review(tuple(audit_tasks(runtime, spec, inputs, list(indices), committed)))


def verdict_evidence(market: JobMarket, store: ContentStore, job_id: int) -> tuple[str, dict[str, Any] | None]:
    """The evidence CID of the job's latest verdict and its document, when the store has it."""
    events = market.contract.events.VerdictSubmitted().get_logs(from_block=market.from_block,
                                                                argument_filters={"jobId": job_id})
    if not events:
        return "", None
    cid = str(events[-1]["args"]["evidenceCid"])
    try:
        document = parse_document(store.read_bytes(Cid.parse(cid), limit=MAX_EVIDENCE_BYTES))  # a verifier wrote it
    except (WebiError, ValueError) as error:
        log.info("job %d: the verifier's evidence %s is unreadable: %s", job_id, cid, error)
        return cid, None
    return cid, document if isinstance(document, dict) else None


def failed_in_evidence(document: dict[str, Any] | None) -> list[int]:
    """The task indices the verifier's evidence says failed (empty when it says nothing usable)."""
    if document is None:
        return []
    checks = document.get("checks")
    if not isinstance(checks, list):
        return []
    return [int(check["index"]) for check in checks
            if isinstance(check, dict) and not check.get("passed", True) and isinstance(check.get("index"), int)]


def challenge_verdict(market: JobMarket, token: WebiToken | None, account: LocalAccount, job_id: int,
                      terms: JobTerms) -> TxReceipt:
    """Approves the bond when the allowance falls short, then challenges.

    ``InsufficientBondError`` when the account cannot pay the bond: nothing is sent.
    """
    bond = terms.bond
    if token is not None:
        balance = token.balance_of(account.address)
        if balance < bond:
            raise InsufficientBondError(f"job {job_id}: the challenge bond is {bond} wei and {account.address} holds "
                                   f"{balance} wei")
        allowance = token.allowance(account.address, market.address)
        if allowance < bond:  # on top of what is approved already (the operator's own plans for it)
            token.approve(account, market.address, allowance + bond)
    return market.challenge(account, job_id, terms)


class InsufficientBondError(WebiError):
    """The provider's token balance cannot cover a challenge bond."""
