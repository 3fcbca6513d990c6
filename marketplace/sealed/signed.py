"""A party's encryption key published in its registration metadata, signed by its account key.

Anyone about to encrypt to a provider or verifier reads the recipient from that party's metadata
document, which anyone could have written. So the document part carries an EIP-191
``personal_sign`` signature by the account over a canonical message naming the chain and the
address; ``verify_encryption_key`` recovers the signer and compares it with the on-chain address,
so a key cannot be swapped by whoever serves the document, nor replayed for another account or
chain::

    {"encryption_key": {"age_recipient": "age1...", "created": "2025-01-31T12:00:00Z",
                        "signature": "0x..."}}

The message: ``b"WEBI encryption key v1\\n" + chain id (decimal) + "\\n" + checksummed address +
"\\n" + recipient + "\\n" + created``, UTF-8.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils.address import is_address, to_checksum_address
from pydantic import BaseModel, ConfigDict, ValidationError

from marketplace.errors import KeySignatureError, MissingKeyError, SealedError
from marketplace.sealed import age

DOCUMENT_FIELD = "encryption_key"
MESSAGE_PREFIX = b"WEBI encryption key v1\n"


class PublishedKey(BaseModel):
    """The ``encryption_key`` part of a metadata document, as published."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    age_recipient: str
    created: str
    signature: str


def key_message(chain_id: int, address: str, recipient: str, created: str) -> bytes:
    """The exact bytes the account signs for ``recipient`` on ``chain_id``."""
    lines = [str(chain_id), to_checksum_address(address), recipient, created]
    return MESSAGE_PREFIX + "\n".join(lines).encode()


def sign_encryption_key(account: LocalAccount, recipient: str, chain_id: int,
                        created: datetime | None = None) -> dict[str, Any]:
    """The ``{"encryption_key": {...}}`` part to merge into ``account``'s metadata document."""
    age.check_recipient(recipient)
    when = (created or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    signed = account.sign_message(encode_defunct(key_message(chain_id, account.address, recipient, when)))
    part = PublishedKey(age_recipient=recipient, created=when, signature="0x" + bytes(signed.signature).hex())
    return {DOCUMENT_FIELD: part.model_dump()}


def verify_encryption_key(part: dict[str, Any], address: str, chain_id: int) -> str:
    """The recipient ``address`` published for ``chain_id``, once its signature is checked.

    ``part`` is the metadata document, or any mapping holding its ``encryption_key``. Raises
    ``MissingKeyError`` when there is no key, ``KeySignatureError`` (naming the address) when it is
    unsigned, malformed, or signed by another account or for another chain.
    """
    if not is_address(address):
        raise SealedError(f"{address!r} is not an address")
    raw = part.get(DOCUMENT_FIELD) if isinstance(part, dict) else None
    if raw is None:
        raise MissingKeyError(f"{address} has published no encryption key")
    if isinstance(raw, dict) and not raw.get("signature"):
        raise KeySignatureError(f"the encryption key published for {address} is not signed")
    try:
        published = PublishedKey.model_validate(raw)
    except ValidationError as error:
        fields = ", ".join(".".join(str(step) for step in item["loc"]) or "(the part)" for item in error.errors())
        raise KeySignatureError(f"the encryption key published for {address} is malformed ({fields})") from None
    try:
        age.check_recipient(published.age_recipient)
    except SealedError:
        raise KeySignatureError(f"the encryption key published for {address} is not an age X25519 recipient") \
            from None
    message = key_message(chain_id, address, published.age_recipient, published.created)
    try:
        signer = Account.recover_message(encode_defunct(message), signature=published.signature)
    except Exception:  # eth_account raises unrelated types (ValueError, BadSignature, ...) for bad bytes
        raise KeySignatureError(f"the encryption key published for {address} has an unreadable signature") \
            from None
    if signer != to_checksum_address(address):
        raise KeySignatureError(f"the encryption key published for {address} is not signed by {address} for chain "
                                f"{chain_id}: it was signed by another account or for another chain, or altered")
    return published.age_recipient
