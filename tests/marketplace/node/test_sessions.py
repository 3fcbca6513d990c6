"""Sign-In with Ethereum sessions: the message the node writes, and every way a sign-in or a token is refused."""

from __future__ import annotations

import re

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from marketplace.errors import ArgumentError
from marketplace.node.sessions import STATEMENT, SessionError, Sessions

HOST = "webi.example:8000"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def signed(account: LocalAccount, message: str) -> str:
    return "0x" + account.sign_message(encode_defunct(text=message)).signature.hex().removeprefix("0x")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sessions(clock: Clock) -> Sessions:
    return Sessions(31337, clock=clock, challenge_ttl_s=300, session_ttl_s=3600)


def test_challenge_writes_an_eip4361_message(sessions: Sessions, requester: LocalAccount) -> None:
    challenge = sessions.challenge(requester.address.lower(), HOST)
    assert re.fullmatch(r"[0-9a-f]{32}", challenge.nonce)
    assert challenge.message == "\n".join([
        f"{HOST} wants you to sign in with your Ethereum account:",
        requester.address,  # EIP-55 checksummed, whatever case was asked for
        "",
        STATEMENT,
        "",
        f"URI: http://{HOST}",
        "Version: 1",
        "Chain ID: 31337",
        f"Nonce: {challenge.nonce}",
        "Issued At: 2023-11-14T22:13:20Z",
        "Expiration Time: 2023-11-14T22:18:20Z",
    ])
    assert challenge.expires_at == 1_700_000_300.0
    assert sessions.challenge(requester.address, HOST).nonce != challenge.nonce


def test_sign_in_opens_a_session_and_its_nonce_cannot_be_replayed(sessions: Sessions, requester: LocalAccount) -> None:
    challenge = sessions.challenge(requester.address, HOST)
    signature = signed(requester, challenge.message)
    session = sessions.sign_in(challenge.nonce, signature)
    assert (session.address, session.expires_at) == (requester.address, 1_700_003_600.0)
    assert sessions.address_of(session.token) == requester.address
    with pytest.raises(SessionError, match="unknown or already used"):
        sessions.sign_in(challenge.nonce, signature)


def test_a_signature_by_another_account_is_refused(sessions: Sessions, requester: LocalAccount,
                                                   stranger: LocalAccount) -> None:
    challenge = sessions.challenge(requester.address, HOST)
    with pytest.raises(SessionError, match=f"signed by {stranger.address}, not by {requester.address}"):
        sessions.sign_in(challenge.nonce, signed(stranger, challenge.message))


def test_a_signature_over_other_text_is_refused(sessions: Sessions, requester: LocalAccount) -> None:
    challenge = sessions.challenge(requester.address, HOST)
    forged = challenge.message.replace(HOST, "evil.example")
    with pytest.raises(SessionError, match="not by"):
        sessions.sign_in(challenge.nonce, signed(requester, forged))


@pytest.mark.parametrize("signature", ["0x00", "0x" + "zz" * 65, "0x" + "ff" * 65, "not hex"])
def test_a_malformed_signature_is_refused_and_spends_the_nonce(sessions: Sessions, requester: LocalAccount,
                                                               signature: str) -> None:
    challenge = sessions.challenge(requester.address, HOST)
    with pytest.raises(SessionError, match="malformed signature"):
        sessions.sign_in(challenge.nonce, signature)
    with pytest.raises(SessionError, match="unknown or already used"):
        sessions.sign_in(challenge.nonce, signed(requester, challenge.message))


def test_an_expired_challenge_is_refused(sessions: Sessions, clock: Clock, requester: LocalAccount) -> None:
    challenge = sessions.challenge(requester.address, HOST)
    clock.now += 299
    fresh = sessions.challenge(requester.address, HOST)
    clock.now += 1
    with pytest.raises(SessionError, match="challenge expired"):
        sessions.sign_in(challenge.nonce, signed(requester, challenge.message))
    assert sessions.sign_in(fresh.nonce, signed(requester, fresh.message)).address == requester.address


def test_a_session_expires(sessions: Sessions, clock: Clock, requester: LocalAccount) -> None:
    challenge = sessions.challenge(requester.address, HOST)
    session = sessions.sign_in(challenge.nonce, signed(requester, challenge.message))
    clock.now += 3599
    assert sessions.authenticate(session.token) == requester.address
    clock.now += 1
    with pytest.raises(SessionError, match="session expired"):
        sessions.authenticate(session.token)
    assert sessions.address_of(session.token) is None
    with pytest.raises(SessionError, match="unknown session token"):
        sessions.authenticate(session.token)  # forgotten once seen expired
    with pytest.raises(SessionError, match="unknown session token"):
        sessions.authenticate(session.token + "x")


def test_malformed_addresses_and_hosts_are_refused(sessions: Sessions, requester: LocalAccount) -> None:
    with pytest.raises(ArgumentError, match="not an Ethereum address"):
        sessions.challenge("0x1234", HOST)
    with pytest.raises(ArgumentError, match="not a host name"):
        sessions.challenge(requester.address, "evil.example\nURI: http://other")
    assert sessions.counts() == (0, 0)


def test_pending_challenges_are_bounded_oldest_dropped(clock: Clock, requester: LocalAccount) -> None:
    sessions = Sessions(1, clock=clock, max_pending=3)
    challenges = [sessions.challenge(requester.address, HOST) for _ in range(4)]
    assert sessions.counts() == (3, 0)
    with pytest.raises(SessionError, match="unknown or already used"):
        sessions.sign_in(challenges[0].nonce, signed(requester, challenges[0].message))
    last = challenges[-1]
    assert sessions.sign_in(last.nonce, signed(requester, last.message)).address == requester.address


def test_sessions_are_bounded_oldest_dropped(clock: Clock, requester: LocalAccount) -> None:
    sessions = Sessions(1, clock=clock, max_sessions=2)
    opened = []
    for _ in range(3):
        challenge = sessions.challenge(requester.address, HOST)
        opened.append(sessions.sign_in(challenge.nonce, signed(requester, challenge.message)))
    assert sessions.counts() == (0, 2)
    assert [sessions.address_of(session.token) for session in opened] == [None, requester.address, requester.address]


def test_expired_entries_are_purged(clock: Clock) -> None:
    sessions = Sessions(1, clock=clock, challenge_ttl_s=10)
    for _ in range(5):
        sessions.challenge(Account.create().address, HOST)
    clock.now += 10
    sessions.challenge(Account.create().address, HOST)
    assert sessions.counts() == (1, 0)


def test_a_node_with_a_public_origin_signs_in_for_it_only(requester: LocalAccount) -> None:
    """The relay: a phishing site's server asks for a message naming the phishing site (its Host header), which the
    victim's wallet, on that site, would not warn about. A node that knows its origin names only that."""
    sessions = Sessions(31337, origin="https://node.example:8443/")
    with pytest.raises(ArgumentError, match=r"this node signs in for node.example:8443 only: open the web app at "
                                            r"https://node.example:8443$"):
        sessions.challenge(requester.address, "evil.example")
    issued = sessions.challenge(requester.address, "NODE.example:8443")
    assert "\nURI: https://node.example:8443\n" in issued.message
    with pytest.raises(ValueError, match="is not an origin"):
        Sessions(31337, origin="node.example")
