"""A provider's measured capacity (``webi provider bench``'s report) in its registration metadata, signed.

The document a registration points to is chosen by the provider's own transaction, but whoever serves it,
or a page that quotes it, could alter it. So the ``capacity`` part carries an EIP-191 ``personal_sign``
signature by the account over a canonical message naming the chain and the address, as the published
encryption key does (``marketplace.sealed.signed``)::

    {"capacity": {"report": {"workload": ..., "measured_at": ..., "devices": [...]}, "signature": "0x..."}}

The message: ``b"WEBI capacity v1\\n" + chain id + "\\n" + checksummed address + "\\n" + the report as JSON
with sorted keys and no spaces``, UTF-8. The figures are the provider's own measurement: the signature says
who claims them, not that they are true (the chain's record of claims and submissions is that).
"""

from __future__ import annotations

import json
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

DOCUMENT_FIELD = "capacity"
MESSAGE_PREFIX = b"WEBI capacity v1\n"


def capacity_message(chain_id: int, address: str, report: dict[str, Any]) -> bytes:
    body = json.dumps(report, sort_keys=True, separators=(",", ":"))
    return MESSAGE_PREFIX + "\n".join([str(chain_id), to_checksum_address(address), body]).encode()


def sign_capacity(account: LocalAccount, report: dict[str, Any], chain_id: int) -> dict[str, Any]:
    """The ``{"capacity": {...}}`` part to merge into ``account``'s metadata document."""
    signed = account.sign_message(encode_defunct(capacity_message(chain_id, account.address, report)))
    return {DOCUMENT_FIELD: {"report": report, "signature": "0x" + bytes(signed.signature).hex()}}


def verified_capacity(document: dict[str, Any] | None, address: str, chain_id: int) -> dict[str, Any] | None:
    """The report in ``document`` when ``address`` signed it for ``chain_id``; None when there is none, or it is
    unsigned, malformed, or signed by anyone else or for another chain (a page then shows nothing)."""
    part = document.get(DOCUMENT_FIELD) if isinstance(document, dict) else None
    if not isinstance(part, dict) or not isinstance(part.get("report"), dict):
        return None
    try:
        signer = Account.recover_message(encode_defunct(capacity_message(chain_id, address, part["report"])),
                                         signature=str(part.get("signature", "")))
    except Exception:  # eth_account raises unrelated types (ValueError, BadSignature, ...) for bad bytes
        return None
    report: dict[str, Any] = part["report"]
    return report if signer == to_checksum_address(address) else None
