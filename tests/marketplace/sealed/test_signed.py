"""Encryption keys published in metadata, signed by the account: accepted only for that account and chain."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from marketplace.errors import KeySignatureError, MissingKeyError
from marketplace.sealed import PartyKey, sign_encryption_key, verify_encryption_key
from marketplace.sealed.signed import MESSAGE_PREFIX, key_message

CHAIN_ID = 31337
CREATED = datetime(2025, 1, 31, 12, 0, tzinfo=UTC)


@pytest.fixture
def key() -> PartyKey:
    return PartyKey.generate()


@pytest.fixture
def document(requester: LocalAccount, key: PartyKey) -> dict[str, Any]:
    """A registration metadata document with other fields beside the signed key."""
    return {"name": "alice", **sign_encryption_key(requester, key.recipient, CHAIN_ID, CREATED)}


def test_signed_key_verifies_for_its_account_and_chain(document: dict[str, Any], requester: LocalAccount,
                                                       key: PartyKey) -> None:
    part = document["encryption_key"]
    assert part["age_recipient"] == key.recipient
    assert part["created"] == "2025-01-31T12:00:00Z"
    assert part["signature"].startswith("0x") and len(part["signature"]) == 132
    assert verify_encryption_key(document, requester.address, CHAIN_ID) == key.recipient
    assert verify_encryption_key(document, requester.address.lower(), CHAIN_ID) == key.recipient


def test_message_names_chain_address_recipient_and_time(requester: LocalAccount, key: PartyKey) -> None:
    message = key_message(CHAIN_ID, requester.address.lower(), key.recipient, "2025-01-31T12:00:00Z")
    assert message == MESSAGE_PREFIX + f"31337\n{requester.address}\n{key.recipient}\n2025-01-31T12:00:00Z".encode()


def test_another_address_is_refused_by_name(document: dict[str, Any], stranger: LocalAccount) -> None:
    with pytest.raises(KeySignatureError, match=stranger.address):
        verify_encryption_key(document, stranger.address, CHAIN_ID)


def test_another_chain_is_refused(document: dict[str, Any], requester: LocalAccount) -> None:
    with pytest.raises(KeySignatureError, match="for chain 1:"):
        verify_encryption_key(document, requester.address, 1)


@pytest.mark.parametrize("field", ["age_recipient", "created"])
def test_a_changed_field_is_refused(document: dict[str, Any], requester: LocalAccount, field: str) -> None:
    document["encryption_key"][field] = PartyKey.generate().recipient if field == "age_recipient" \
        else "2025-02-01T12:00:00Z"
    with pytest.raises(KeySignatureError, match="not signed by"):
        verify_encryption_key(document, requester.address, CHAIN_ID)


def test_a_key_signed_by_someone_else_is_refused(requester: LocalAccount, stranger: LocalAccount,
                                                 key: PartyKey) -> None:
    forged = sign_encryption_key(stranger, key.recipient, CHAIN_ID, CREATED)
    with pytest.raises(KeySignatureError, match=requester.address):
        verify_encryption_key(forged, requester.address, CHAIN_ID)


@pytest.mark.parametrize(("change", "message"), [
    ({"signature": None}, "is not signed"),
    ({"signature": ""}, "is not signed"),
    ({"signature": "0x1234"}, "unreadable signature"),
    ({"age_recipient": "age1notakey"}, "not an age X25519 recipient"),
    ({"extra": 1}, "malformed"),
], ids=["none", "empty", "short", "bad-recipient", "extra-field"])
def test_a_malformed_part_is_refused(document: dict[str, Any], requester: LocalAccount, change: dict[str, Any],
                                     message: str) -> None:
    document["encryption_key"].update(change)
    with pytest.raises(KeySignatureError, match=message) as raised:
        verify_encryption_key(document, requester.address, CHAIN_ID)
    assert requester.address in str(raised.value)


def test_no_key_published_is_missing_key(requester: LocalAccount) -> None:
    with pytest.raises(MissingKeyError, match=f"{requester.address} has published no encryption key"):
        verify_encryption_key({"name": "alice"}, requester.address, CHAIN_ID)
