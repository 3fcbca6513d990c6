"""Sign-In with Ethereum (EIP-4361) for the node's web app: a wallet proves it holds an address, and gets a
short-lived bearer token that lets it upload job files (``marketplace.node.uploads``).

The flow: ``challenge(address, host)`` writes the EIP-4361 message naming the address, this node's host
and chain, a one-time nonce and an expiry, and remembers it by nonce; the wallet signs that text
(``personal_sign``); ``sign_in(nonce, signature)`` recovers the signer, checks it is the address the
message names and that the challenge is still fresh, forgets the nonce (a second sign-in with it is
refused) and returns a ``Session``: a random token bound to the address until it expires.

The server writes the message itself, and only ever checks messages it wrote: the PyPI ``siwe`` package
pins web3 and eth-account below the versions WEBI runs on, and a server that only verifies its own text
needs no parser for anybody else's.

@dev Warning: the message's domain is the request's ``Host`` header, which the client chooses. That is
sound only because the wallet, not this server, compares the domain with the origin of the page asking
for the signature and warns on a mismatch; behind a proxy the ``Host`` the node sees must be the one the
browser used. Only externally owned accounts sign in: a contract wallet's signature (EIP-1271) is not
recovered. Sessions live in this process's memory: a restart signs everyone out, and several node
processes behind one address do not share them.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_keys.exceptions import BadSignature
from eth_utils.address import is_address, to_checksum_address
from eth_utils.exceptions import ValidationError

from marketplace.errors import ArgumentError, WebiError

STATEMENT = "Sign in to upload job files to this WEBI node."
_SIGNATURE = re.compile(r"0x[0-9a-fA-F]{130}")
# An authority as RFC 3986 writes it (a name or an IP literal, then a port); anything else in a Host
# header would let a client write its own lines into the message.
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?")


class SessionError(WebiError):
    """A sign-in or a session token is refused: unknown or used nonce, expired, wrong signer, bad token.
    The node answers 401 with the message."""


@dataclass(frozen=True)
class Challenge:
    """An EIP-4361 message for a wallet to sign; ``expires_at`` is Unix time in seconds."""

    nonce: str
    message: str
    expires_at: float


@dataclass(frozen=True)
class Session:
    """A signed-in wallet: ``token`` is the bearer token, valid for ``address`` until ``expires_at``."""

    token: str
    address: str
    expires_at: float


@dataclass(frozen=True)
class _Pending:
    address: str
    message: str
    expires_at: float


@dataclass(frozen=True)
class _Held:
    address: str
    expires_at: float


_Entry = TypeVar("_Entry", _Pending, _Held)


class Sessions:
    """Challenges waiting for a signature and the sessions they opened, bounded in number, safe across threads.

    Entries are kept oldest first; past ``max_pending`` challenges or ``max_sessions`` sessions the oldest
    are dropped, so a flood of sign-ins costs memory that is bounded. Tokens are kept hashed: what this
    process holds cannot be replayed as a token.
    """

    def __init__(self, chain_id: int, *, origin: str | None = None, clock: Callable[[], float] = time.time,
                 challenge_ttl_s: float = 300.0, session_ttl_s: float = 3600.0, max_pending: int = 10_000,
                 max_sessions: int = 10_000) -> None:
        if challenge_ttl_s <= 0 or session_ttl_s <= 0 or max_pending < 1 or max_sessions < 1:
            raise ValueError("Sessions needs positive lifetimes and room for at least one entry of each kind")
        self.chain_id = chain_id
        # The node's public origin ("https://node.example"): the only domain its messages name. Without it the
        # request's Host is trusted, which suits a node only its own machine reaches (tests, a local devnet).
        self.origin = origin.rstrip("/") if origin else None
        if self.origin is not None and not re.fullmatch(r"https?://" + _HOST.pattern, self.origin):
            raise ValueError(f"{origin!r} is not an origin (http:// or https://, a host, an optional port)")
        self._clock = clock
        self._challenge_ttl_s = challenge_ttl_s
        self._session_ttl_s = session_ttl_s
        self._max_pending = max_pending
        self._max_sessions = max_sessions
        self._lock = threading.Lock()
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._sessions: OrderedDict[str, _Held] = OrderedDict()

    def challenge(self, address: str, host: str) -> Challenge:
        """A fresh message for ``address`` to sign in to this node at ``host`` (the request's Host header);
        ``ArgumentError`` when either is malformed."""
        if not is_address(address):
            raise ArgumentError(f"{address!r} is not an Ethereum address (0x and 40 hex digits)")
        if not _HOST.fullmatch(host):
            raise ArgumentError(f"{host!r} is not a host name with an optional port")
        uri = f"http://{host}"
        if self.origin is not None:
            # A relay (a phishing site's server) would ask for a message naming its own domain, which the
            # victim's wallet, on that site, would not warn about: only this node's own origin is signed for.
            _, authority = self.origin.split("://", 1)
            if host.lower() != authority.lower():
                raise ArgumentError(f"this node signs in for {authority} only: open the web app at {self.origin}")
            uri = self.origin
        checksummed = to_checksum_address(address)
        nonce = secrets.token_hex(16)
        with self._lock:
            now = self._clock()
            expires_at = now + self._challenge_ttl_s
            message = "\n".join([
                f"{host} wants you to sign in with your Ethereum account:",
                checksummed,
                "",
                STATEMENT,
                "",
                f"URI: {uri}",
                "Version: 1",
                f"Chain ID: {self.chain_id}",
                f"Nonce: {nonce}",
                f"Issued At: {_rfc3339(now)}",
                f"Expiration Time: {_rfc3339(expires_at)}",
            ])
            _purge(self._pending, now)
            self._pending[nonce] = _Pending(checksummed, message, expires_at)
            while len(self._pending) > self._max_pending:
                self._pending.popitem(last=False)
        return Challenge(nonce, message, expires_at)

    def sign_in(self, nonce: str, signature: str) -> Session:
        """The session opened by ``signature`` over the challenge ``nonce``; ``SessionError`` says why not.

        The nonce is spent by the first attempt, good or bad: a refused signature needs a new challenge.
        """
        with self._lock:
            pending = self._pending.pop(nonce, None)
            now = self._clock()
        if pending is None:
            raise SessionError("unknown or already used sign-in nonce: ask for a new challenge")
        if now >= pending.expires_at:
            raise SessionError("the sign-in challenge expired: ask for a new one and sign it within "
                               f"{self._challenge_ttl_s:.0f} seconds")
        if not _SIGNATURE.fullmatch(signature):
            raise SessionError("malformed signature: expected 65 bytes as 0x-prefixed hex")
        try:
            signer = Account.recover_message(encode_defunct(text=pending.message), signature=signature)
        except (ValueError, BadSignature, ValidationError) as error:
            raise SessionError(f"malformed signature: {error}") from None
        if signer != pending.address:
            raise SessionError(f"the message was signed by {signer}, not by {pending.address} which it names")
        token = secrets.token_urlsafe(32)
        with self._lock:
            now = self._clock()
            session = Session(token, pending.address, now + self._session_ttl_s)
            _purge(self._sessions, now)
            self._sessions[_key(token)] = _Held(session.address, session.expires_at)
            while len(self._sessions) > self._max_sessions:
                self._sessions.popitem(last=False)
        return session

    def authenticate(self, token: str) -> str:
        """The address signed in with ``token``; ``SessionError`` when it is unknown or has expired."""
        key = _key(token)
        with self._lock:
            held = self._sessions.get(key)
            if held is not None and self._clock() >= held.expires_at:
                del self._sessions[key]
                raise SessionError("session expired: sign in with your wallet again")
        if held is None:
            raise SessionError("unknown session token: sign in with your wallet first")
        return held.address

    def address_of(self, token: str) -> str | None:
        """The address signed in with ``token``, or ``None`` when it is unknown or has expired."""
        try:
            return self.authenticate(token)
        except SessionError:
            return None

    def counts(self) -> tuple[int, int]:
        """How many challenges and sessions are held (expired ones included until they are purged)."""
        with self._lock:
            return len(self._pending), len(self._sessions)


def _purge(entries: OrderedDict[str, _Entry], now: float) -> None:
    """Drops expired entries from the front: every entry lives as long as the next, so they expire in order."""
    while entries:
        first = next(iter(entries.values()))
        if now < first.expires_at:
            break
        entries.popitem(last=False)


def _key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _rfc3339(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
