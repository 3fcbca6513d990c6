"""A requester's party key(s): the X25519 key beside its wallet's keystore, unlocked with the wallet's password.

The key is made on first need (``sealed.keys.ensure``, with the keystore's own KDF), so a wallet
that never posts a confidential job never has one. Reading results opens the job key with every
key the wallet ever had (``load_all``): a rotation must not lock the requester out of its old jobs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from marketplace.chain.market import JobMarket
from marketplace.errors import ConfigError, ContentError
from marketplace.jobspec import JobSpec, parse_spec
from marketplace.sealed.envelope import job_key_from_spec
from marketplace.sealed.keys import JobKey, PartyKey, ensure, kdf_of, key_path_for, load_all
from marketplace.storage import ContentStore
from marketplace.storage.cid import Cid

MAX_SPEC_BYTES = 64 * 1024


@dataclass
class RequesterKeys:
    """The party keys of the wallet whose keystore is ``keystore``, unlocked (once) when first asked for."""

    keystore: Path
    password: str = field(repr=False)
    _keys: list[PartyKey] | None = field(default=None, init=False, repr=False)

    @property
    def path(self) -> Path:
        return key_path_for(self.keystore)

    def current(self) -> PartyKey:
        """The key new jobs wrap their key to: created beside the keystore if there is none yet."""
        return self.all()[0]

    def all(self) -> list[PartyKey]:
        """The current key and every rotated-out one, newest first."""
        if self._keys is None:
            if self.path.exists():
                self._keys = load_all(self.path, self.password)
            else:
                kdf, iterations = kdf_of(self.keystore)
                self._keys = [ensure(self.path, self.password, kdf=kdf, iterations=iterations)]
        return self._keys


def read_job_spec(market: JobMarket, store: ContentStore, job_id: int) -> JobSpec:
    """The job's spec, read from the store (its CID is on-chain: the store cannot change it)."""
    return parse_spec(store.read_bytes(Cid.parse(market.posted(job_id).spec_cid), limit=MAX_SPEC_BYTES))


def job_key_of(market: JobMarket, store: ContentStore, job_id: int, keys: RequesterKeys | None) -> JobKey | None:
    """A confidential job's key, unwrapped from its spec with the requester's party keys (every one it ever had,
    so a rotation locks nothing out); None for a public job (whose spec is then not read). ``ConfigError``
    without the requester's keys; a ``SealedError`` when they do not open it."""
    terms = market.posted(job_id).terms
    if not terms.confidential:
        return None
    spec = read_job_spec(market, store, job_id)
    if spec.confidential is None:
        raise ContentError(f"job {job_id} is confidential on-chain, but its spec has no confidential section")
    if keys is None:
        raise ConfigError(f"job {job_id} is confidential: its results open only with its requester's key: pass "
                          f"--wallet (the wallet of {terms.requester})")
    return job_key_from_spec(spec.confidential, terms.requester, keys.all())
