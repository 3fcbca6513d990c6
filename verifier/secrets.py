"""A verifier's audit secrets: derived from its key, committed one at a time, revealed at each verdict.

The contract draws a verifier only while it has a secret commitment, and the tasks an audit
re-executes follow ``keccak256(seed, secret)``: nobody but the verifier knows the sample before
its verdict, not even the producer of the seed block. Each verdict reveals the secret the draw
committed the verifier to and commits the next one (the next index).

Secrets are derived (``protocol.audit_secret``) rather than stored, so that a restarted daemon,
or one whose state folder was lost, finds the secret behind any of its commitments from the key
alone: it scans the indices, and remembers what it derived.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from eth_account.signers.local import LocalAccount

from marketplace.chain.market import JobMarket
from marketplace.protocol import ZERO_HASH, Audit, audit_secret, secret_hash

log = logging.getLogger(__name__)

# How far a scan for the secret behind a commitment goes: one secret per verdict, so a verifier
# reaches this after a million audits (a scan of that length takes seconds, once per start).
SCAN_LIMIT = 1_000_000


@dataclass
class AuditSecrets:
    """The audit secrets of one account on one deployment (chain and market)."""

    key: bytes = field(repr=False)  # the account key: never in a log line or a traceback
    chain_id: int
    market: str
    _index_by_hash: dict[bytes, int] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, account: LocalAccount, market: JobMarket) -> AuditSecrets:
        return cls(bytes(account.key), market.client.chain_id, market.address)

    def secret(self, index: int) -> bytes:
        return audit_secret(self.key, self.chain_id, self.market, index)

    def commitment(self, index: int) -> bytes:
        """What ``commitSecret`` publishes for secret ``index``."""
        return secret_hash(self.secret(index))

    def for_audit(self, audit: Audit) -> tuple[bytes, bytes]:
        """The secret ``audit``'s draw committed us to and the hash of the next one, as ``submitVerdict``
        and ``demandReveal`` take them (zeros once a reveal demand opened the secret: the contract
        ignores both then)."""
        if audit.revealed:
            return ZERO_HASH, ZERO_HASH
        index = self.index_of(audit.secret)
        return self.secret(index), self.commitment(index + 1)

    def index_of(self, commitment: bytes, limit: int = SCAN_LIMIT) -> int:
        """The index of the secret behind ``commitment``; ``LookupError`` when none of the first
        ``limit`` is (the commitment was not made by this daemon's derivation)."""
        if commitment in self._index_by_hash:
            return self._index_by_hash[commitment]
        for index in range(len(self._index_by_hash), limit):
            derived = self.commitment(index)
            self._index_by_hash[derived] = index
            if derived == commitment:
                return index
        raise LookupError(f"no audit secret of this key among the first {limit} hashes to 0x{commitment.hex()}")

    def first_unused(self, market: JobMarket, verifier: str) -> int:
        """The index after every secret this account ever committed on this market (0 for a new
        account), from its ``SecretCommitted`` events: a secret is never committed twice."""
        events = market.contract.events.SecretCommitted().get_logs(
            from_block=market.from_block, argument_filters={"verifier": verifier})
        # Each commitment is the one after the last revealed, so n events reach index n - 1 at most.
        limit = len(events) + 16
        used = -1
        for event in events:
            commitment = bytes(event["args"]["secretHash"])
            try:
                used = max(used, self.index_of(commitment, limit))
            except LookupError:
                log.warning("commitment 0x%s of %s was not derived by this daemon; ignored", commitment.hex(),
                            verifier)
        return used + 1
