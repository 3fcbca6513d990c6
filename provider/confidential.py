"""Confidential jobs on the provider's side: which key opens a job, how it arrives, and who gets it next.

A confidential job's spec is in clear, but its inputs, its model (when ``model_encrypted``) and the
output manifest are age files to the job key (``marketplace.sealed.envelope``). The provider gets
that key one of two ways:

- Directed: the spec wraps it to each allowlisted provider. It is opened before the claim; a key
  that does not open (wrapped to someone else, or another job's) means the job is refused unclaimed.
- Open: the requester releases it on-chain (``KeyReleased`` to the claimant) after the claim. The
  provider claims only once its own published key is the one it holds (a requester encrypts to the
  published one), and gives the claim back unslashed (``releaseClaim``) when no key came within the
  job's ``key_window`` or the key that came does not open this job.

Job keys are never written to disk. They live in memory (``KeyRing``); after a restart they are
recovered again from what is on-chain or in the spec (the wrapped bytes), with the party keys. Once
the job is submitted, the provider wraps the key to each drawn verifier and panel member the spec
does not already wrap it to (their published recipients), once each: the chain's ``KeyReleased``
events are the record of what was sent, so a restart never sends one twice. A reveal demand on a
confidential job is answered with the sampled outputs sealed to the job key (``provider.reveals``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from marketplace.chain.market import JobMarket
from marketplace.errors import SealedError
from marketplace.jobspec import JobSpec, parse_inputs
from marketplace.protocol import Confidentiality, JobTerms, Role
from marketplace.sealed.directory import published_recipient
from marketplace.sealed.envelope import Envelope, job_key_from_release, job_key_from_spec, open_sealed, release_for
from marketplace.sealed.keys import JobKey, PartyKey, key_path_for, load_all
from marketplace.storage import ContentStore
from marketplace.storage.cid import Cid
from provider.config import DaemonSettings
from provider.outputs import Opener

log = logging.getLogger(__name__)

# An age file adds a header and 16 bytes per 64 KiB chunk to its plaintext: a little room over the bound.
AGE_OVERHEAD = 1024 * 1024


def load_party_keys(config: DaemonSettings, password: str | None = None) -> list[PartyKey]:
    """This account's encryption keys (current and rotated-out), or none when it has no key file yet.

    ``password`` is the keystore's; read from the config's source (or a prompt) when not given.
    """
    path = key_path_for(config.keystore.expanduser())
    if not path.exists():
        return []
    if password is None:
        from marketplace.keystore import read_password

        password = read_password(env=config.password_env, file=config.password_file,
                                 prompt=f"password for {config.keystore}: ")
    return load_all(path, password)


def envelope_of(spec: JobSpec) -> Envelope:
    """The spec's envelope; a ``SealedError`` for a confidential job whose spec has none."""
    if spec.confidential is None:
        raise SealedError("the job is confidential on-chain, but its spec has no confidential section")
    return spec.confidential


def read_sealed_inputs(store: ContentStore, spec: JobSpec, job_key: JobKey, limit: int) -> list[str]:
    """The task inputs of a confidential job: its sealed manifest fetched, opened with the job key, parsed."""
    blob = store.read_bytes(Cid.parse(spec.inputs), limit=limit + AGE_OVERHEAD)
    return parse_inputs(open_sealed(blob, job_key, f"the inputs manifest {spec.inputs}"), spec.num_tasks)


@dataclass(frozen=True)
class Release:
    """One ``KeyReleased`` event: who sent which wrapped key to whom, and in which block."""

    sender: str
    to: str
    wrapped_key: bytes
    block: int


@dataclass
class KeyRing:
    """This provider's party keys and the job keys it has opened (in memory only; see the module docstring)."""

    market: JobMarket
    store: ContentStore  # reads the parties' registration metadata
    address: str
    party_keys: list[PartyKey]
    _job_keys: dict[int, JobKey] = field(default_factory=dict, repr=False)
    _specs: dict[int, JobSpec] = field(default_factory=dict, repr=False)  # confidential jobs we follow
    _handed: set[tuple[int, str]] = field(default_factory=set, repr=False)  # (job, party) seen released to
    _published: tuple[bool, str] | None = field(default=None, repr=False)  # (usable, why not), checked once

    # -- before the claim ----------------------------------------------------------------------

    def refusal(self, job_id: int, terms: JobTerms, spec: JobSpec) -> str | None:
        """Why this provider must not claim the confidential job ``job_id``; ``None`` when it may.

        A Directed job's key is opened here (and kept); an Open job needs our published key.
        """
        if not self.party_keys:
            return "the job is confidential and this provider has no encryption key (`webi provider register` " \
                   "creates one)"
        try:
            envelope = envelope_of(spec)
            if terms.confidentiality == Confidentiality.DIRECTED:
                self._job_keys[job_id] = job_key_from_spec(envelope, self.address, self.party_keys)
                return None
        except SealedError as error:
            return f"confidential job refused: {error}"
        usable, why = self.published()
        return None if usable else f"an Open confidential job, and {why}"

    def published(self) -> tuple[bool, str]:
        """Whether our registration publishes the key we hold (so requesters encrypt to it); checked once."""
        if self._published is None:
            if not self.party_keys:
                self._published = (False, "this provider has no encryption key")
            else:
                try:
                    recipient = published_recipient(self.market, self.store, self.address, Role.PROVIDER)
                except SealedError as error:
                    self._published = (False, f"this provider's registration publishes no usable key: {error}")
                else:
                    ours = self.party_keys[0].recipient
                    self._published = (True, "") if recipient == ours else (
                        False, "this provider's registration publishes another key than the one it holds "
                               "(register again to publish it)")
            if not self._published[0]:
                log.warning("Open confidential jobs are refused: %s", self._published[1])
        return self._published

    # -- the job key ---------------------------------------------------------------------------

    def job_key(self, job_id: int, terms: JobTerms, spec: JobSpec) -> JobKey | None:
        """The job's key: opened from the spec (Directed) or from the requester's release to us (Open).

        ``None`` while an Open job's key has not been released to us; ``SealedError`` when what we were
        given does not open this job (the newest release that opens wins: a requester may send again).
        """
        cached = self._job_keys.get(job_id)
        if cached is not None:
            return cached
        envelope = envelope_of(spec)
        if terms.confidentiality == Confidentiality.DIRECTED:
            key = job_key_from_spec(envelope, self.address, self.party_keys)
        else:
            released = self.releases(job_id, sender=terms.requester, to=self.address)
            if not released:
                return None
            problems: list[str] = []
            for release in reversed(released):
                try:
                    key = job_key_from_release(envelope, release.wrapped_key, self.party_keys,
                                               f"the key released in block {release.block}")
                    break
                except SealedError as error:
                    problems.append(str(error))
            else:
                raise SealedError("; ".join(problems))
        self._job_keys[job_id] = key
        return key

    def forget(self, job_id: int) -> None:
        """Drops a job's key (and spec) from memory: the job has ended for us."""
        self._job_keys.pop(job_id, None)
        self._specs.pop(job_id, None)
        self._handed = {(job, to) for job, to in self._handed if job != job_id}

    def spec_of(self, job_id: int, spec_cid: str, read: Callable[[str], JobSpec]) -> JobSpec:
        """A followed confidential job's spec, read once (``read``: the intake's ``read_spec``)."""
        spec = self._specs.get(job_id)
        if spec is None:
            spec = self._specs[job_id] = read(spec_cid)
        return spec

    def opener(self, job_id: int, terms: JobTerms, spec: JobSpec) -> Opener:
        """Turns the job's sealed output manifest (our archive, the store) back into the plaintext one."""
        key = self.job_key(job_id, terms, spec)
        if key is None:
            raise SealedError(f"job {job_id}: its key was never released to this provider")
        return lambda blob: open_sealed(blob, key, f"job {job_id}'s output manifest")

    def releases(self, job_id: int, *, sender: str | None = None, to: str | None = None) -> list[Release]:
        """The job's ``KeyReleased`` events, oldest first, optionally from ``sender`` and to ``to``."""
        filters: dict[str, Any] = {"jobId": job_id}
        if sender is not None:
            filters["from"] = to_checksum_address(sender)
        if to is not None:
            filters["to"] = to_checksum_address(to)
        events = self.market.contract.events.KeyReleased().get_logs(from_block=self.market.from_block,
                                                                   argument_filters=filters)
        return [Release(str(event["args"]["from"]), str(event["args"]["to"]), bytes(event["args"]["wrappedKey"]),
                        int(event["blockNumber"])) for event in events]

    # -- handing the key on --------------------------------------------------------------------

    def hand_on(self, account: LocalAccount, job_id: int, terms: JobTerms, spec: JobSpec, to: str,
                role: Role) -> bool:
        """Releases the job key to ``to`` (a drawn verifier or panel member) unless the spec wraps it to
        them or the chain shows we did. False when ``to`` published no usable key: logged, nothing sent.
        """
        handed = (job_id, to_checksum_address(to))
        if spec.confidential is not None and to_checksum_address(to) in spec.confidential.keys:
            return True  # the requester wrapped it to them in the spec: nothing to send
        if handed in self._handed or self.releases(job_id, sender=self.address, to=to):
            self._handed.add(handed)
            return True
        key = self.job_key(job_id, terms, spec)
        if key is None:
            raise SealedError(f"job {job_id}: its key was never released to this provider")
        try:
            recipient = published_recipient(self.market, self.store, to, role)
        except SealedError as error:
            log.warning("job %d: cannot release the key to %s %s: %s", job_id, role.name.lower(), to, error)
            return False
        self.market.release_key(account, job_id, to, release_for(key, recipient), terms)
        self._handed.add(handed)
        log.info("job %d: key released to %s %s", job_id, role.name.lower(), to)
        return True
