"""Whose key to encrypt to: a party's published X25519 recipient, found from the chain and checked.

A provider or verifier publishes its recipient in the metadata document its ``Registered`` event
names (the latest one counts: it registers again after a full unstake). The document comes from a
content store anyone may run, so the recipient is trusted only once its signature is checked
against the registered address and this chain (``signed.verify_encryption_key``): a store that
swaps the key cannot make anyone encrypt to it. ``verifier_recipients`` lists the verifiers a
confidential spec wraps its key to at posting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eth_utils.address import to_checksum_address

from marketplace.errors import MissingKeyError, WebiError
from marketplace.output_json import parse_document
from marketplace.protocol import Role
from marketplace.sealed.signed import verify_encryption_key
from marketplace.storage.cid import Cid

if TYPE_CHECKING:
    from marketplace.chain.market import JobMarket
    from marketplace.storage import ContentStore

MAX_METADATA_BYTES = 64 * 1024


def read_metadata(store: ContentStore, cid: str) -> Any:
    """The metadata document at ``cid``, parsed with bounds (``WebiError`` or ``ValueError`` when it cannot be)."""
    return parse_document(store.read_bytes(Cid.parse(cid), limit=MAX_METADATA_BYTES))


def metadata_cid(market: JobMarket, address: str, role: Role) -> str:
    """The metadata CID in force for ``address`` as ``role``: its latest ``Registered`` or ``MetadataUpdated``
    (``""`` when it gave none)."""
    from marketplace.provider_offers import latest_metadata

    found = latest_metadata(market, role, to_checksum_address(address))
    if not found:
        raise MissingKeyError(f"{to_checksum_address(address)} is not registered as a {role.name.lower()}")
    return next(iter(found.values()))


def published_recipient(market: JobMarket, store: ContentStore, address: str, role: Role) -> str:
    """``address``'s age recipient, from its registration metadata, signature checked.

    ``MissingKeyError`` when it published none (or the store lacks the document); ``KeySignatureError``
    when the signature does not match the address and this chain.
    """
    return _recipient_in(market, store, address, metadata_cid(market, address, role))


def _recipient_in(market: JobMarket, store: ContentStore, address: str, cid: str) -> str:
    """The recipient that the metadata document at ``cid`` publishes for ``address``, signature checked."""
    if not cid:
        raise MissingKeyError(f"{to_checksum_address(address)} registered without a metadata document: it has "
                              "published no encryption key")
    try:
        document = read_metadata(store, cid)
    except (WebiError, ValueError) as error:
        raise MissingKeyError(f"cannot read the metadata {cid} of {to_checksum_address(address)}: {error}") from None
    if not isinstance(document, dict):
        raise MissingKeyError(f"the metadata {cid} of {to_checksum_address(address)} is not a JSON object")
    return verify_encryption_key(document, address, market.client.chain_id)


def verifier_recipients(market: JobMarket, store: ContentStore, limit: int,
                        excluded: tuple[str, ...] = ()) -> dict[str, str]:
    """Up to ``limit`` verifiers in the draw now (weight > 0), the heaviest first, each with its published
    recipient, signature checked; those without a usable one are left out (they cannot open the job
    whoever wraps to them). A confidential spec wraps its key to these at posting (``confidential_post``),
    so a drawn verifier or panel member gets the key from the requester, not from the provider it judges."""
    from marketplace.provider_offers import latest_metadata

    skip = {to_checksum_address(address) for address in excluded}
    documents = {address: cid for address, cid in latest_metadata(market, Role.VERIFIER).items()
                 if to_checksum_address(address) not in skip}
    weights = {address: market.verifier_weight(address) for address in documents}
    found: dict[str, str] = {}
    for address in sorted((a for a, w in weights.items() if w > 0), key=lambda a: (-weights[a], a)):
        if len(found) >= limit:
            break
        try:  # the document each one's latest event names: read once above, not per verifier
            found[str(to_checksum_address(address))] = _recipient_in(market, store, address, documents[address])
        except WebiError:  # MissingKeyError, KeySignatureError (both SealedError): nothing usable to wrap to
            continue
    return found
