"""Re-publishing a staker's encryption key after a rotation: a new metadata document, pointed to on-chain.

Providers and verifiers publish their X25519 recipient, signed, in the metadata document their
registration names (``marketplace.sealed.directory``). A rotated key is useless to others until that
document changes, so ``webi wallet key --rotate`` copies the document in force, puts the new signed
key in it, adds it to the store and calls ``updateMetadata`` for each role the account is staked in.
Everything else in the document (GPU facts, tasks, price floors) is kept as it was.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from marketplace.errors import WebiError
from marketplace.protocol import Role
from marketplace.sealed.directory import metadata_cid, read_metadata
from marketplace.sealed.signed import sign_encryption_key

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from marketplace.chain.deployment import Protocol
    from marketplace.storage import ContentStore


@dataclass(frozen=True)
class Published:
    role: Role
    metadata_cid: str
    tx_hash: str


def republish_key(protocol: Protocol, store: ContentStore, account: LocalAccount, recipient: str) -> list[Published]:
    """Points each of ``account``'s registrations to a copy of its document with ``recipient`` signed in.

    Returns one entry per role updated (none when the account is not staked). A document the store
    no longer has is replaced by one holding only the key: the old facts cannot be copied, and
    the key must not wait for them.
    """
    market = protocol.market
    done = []
    for role in (Role.PROVIDER, Role.VERIFIER):
        stake = market.provider_stake(account.address) if role == Role.PROVIDER else market.verifier_stake(
            account.address)
        if stake.stake == 0:
            continue
        document = _document(store, metadata_cid(market, account.address, role))
        document.update(sign_encryption_key(account, recipient, protocol.deployment.chain_id))
        cid = str(store.add_bytes(json.dumps(document, sort_keys=True).encode()).cid)
        receipt = market.update_metadata(account, role, cid)
        done.append(Published(role, cid, receipt["transactionHash"].to_0x_hex()))
    return done


def _document(store: ContentStore, cid: str) -> dict[str, Any]:
    if not cid:
        return {}
    try:
        document = read_metadata(store, cid)
    except (WebiError, ValueError):
        return {}
    return dict(document) if isinstance(document, dict) else {}
