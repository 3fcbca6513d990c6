"""Fixtures shared by the contract tests."""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount

from marketplace.protocol import Role
from tests.conftest import Chain
from tests.contracts.support import dev


@pytest.fixture
def staffed(chain: Chain, provider: LocalAccount, verifier: LocalAccount) -> Chain:
    """A chain where ``provider`` and ``verifier`` are registered with 1,000 WEBI each; with no other
    verifier, ``verifier`` is drawn for every job."""
    chain.register(provider, Role.PROVIDER)
    chain.register(verifier, Role.VERIFIER)
    return chain


@pytest.fixture
def jurors() -> list[LocalAccount]:
    """Three accounts that serve on panels (dev accounts 5, 6, 7)."""
    return [dev(5), dev(6), dev(7)]
