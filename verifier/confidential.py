"""Confidential jobs on the verifier's side: where the job key comes from, and judging in clear.

A confidential job's inputs, its model (when ``model_encrypted``) and its output manifest are age
files to the job key (``marketplace.sealed.envelope``). A verifier gets that key from the spec, where
the requester wrapped it at posting to the verifiers then in the draw (``directory.verifier_recipients``),
or else on-chain: the job's provider (or requester) wraps it to the verifier's published recipient (its
registration metadata, ``webi verifier register``) and releases it (``KeyReleased`` to our address).
The rules:

- The spec wraps a key to us that does not open the job: the requester's doing, never the provider's
  (it cannot touch the spec): every task is excused (``BadSpecKeyError``). This is why the spec's key
  comes first: a provider cannot hand us a bad key and then win the appeal with good keys to the panel.

- No party key at all (never registered with one): the job cannot be opened by us, which is no
  fault of the provider's: the audit is inconclusive (``without_key``).
- No key released to us yet: as for outputs the store does not have (``NoReleasedKeyError`` is an
  ``OutputsNotFoundError``): retried for the grace, then demanded (``demandReveal``); the provider
  answers a demand on a confidential job with the key and the sampled outputs sealed on-chain
  (``outputs.from_chain`` opens and proves them), and one that does not is failed by
  ``failUnrevealed`` as for withheld outputs. A key still missing once the demand is answered is
  the provider's doing: the sample fails (``withheld``).
- Keys released to us, none of which opens this job (garbage, wrapped to someone else, another
  job's key): the provider's fault, ``BadReleasedKeyError``: fail.
- A panel member with no key by its commit deadline votes fail: the key is the provider's to
  release (it must release it to each member), and one that withholds it must not win its appeal.

With the key, the sampled outputs come from the sealed manifest (``outputs.from_store`` with an
opener), and the job is judged in clear exactly as a public one (``References.over`` a private
store that holds the opened inputs, model and spec: ``verifier.opened``).
Nothing opened leaves this machine: the evidence of a confidential job is redacted
(``evidence.redacted``), and nothing here logs a value or a key.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from marketplace.chain.market import JobMarket
from marketplace.errors import SealedError, WebiError
from marketplace.jobspec import JobSpec
from marketplace.sealed.envelope import Envelope, job_key_from_release, job_key_from_spec
from marketplace.sealed.keys import JobKey, PartyKey, ensure, kdf_of, key_path_for, load_all
from marketplace.sealed.signed import sign_encryption_key
from marketplace.storage import ContentStore
from verifier.opened import opened_job
from verifier.outputs import OutputsNotFoundError, OutputsUnavailableError, SampledOutputs, from_chain, from_store
from verifier.verdict import References, SampleAudit, TaskAudit

log = logging.getLogger(__name__)

NO_KEY = "no encryption key: confidential jobs' audits will be demanded/inconclusive (`webi verifier register` " \
         "creates one)"


class NoReleasedKeyError(OutputsNotFoundError):
    """No key released to us yet: retried for the grace, then demanded, as for outputs not found."""


class BadReleasedKeyError(WebiError):
    """Keys were released to us, and none opens the job: the provider's fault."""


class BadSpecKeyError(WebiError):
    """The spec wraps the job key to us, and it does not open the job: the requester's doing (excused)."""


def create_party_key(keystore: Path, password: str) -> PartyKey:
    """The verifier's party key beside its keystore (created on first use), locked as the keystore is."""
    path = keystore.expanduser()
    kdf, iterations = kdf_of(path)
    return ensure(key_path_for(path), password, kdf=kdf, iterations=iterations)


def load_party_keys(keystore: Path, password: str) -> list[PartyKey]:
    """The verifier's party keys (current and rotated-out), or none when it has no key file."""
    path = key_path_for(keystore.expanduser())
    return load_all(path, password) if path.exists() else []


def registration_metadata(account: LocalAccount, key: PartyKey, chain_id: int) -> bytes:
    """The document a verifier's registration points to: the signed public half of its encryption key
    (``sign_encryption_key``), which providers read (``directory.published_recipient``) to release keys."""
    document = {"kind": "webi-verifier", "version": 1, **sign_encryption_key(account, key.recipient, chain_id)}
    return json.dumps(document, sort_keys=True).encode()


@dataclass
class JobKeys:
    """The job keys released to ``address`` on-chain, opened with its party keys (kept in memory only)."""

    market: JobMarket
    address: str
    party_keys: list[PartyKey]
    _opened: dict[int, JobKey] = field(default_factory=dict, repr=False)

    @property
    def usable(self) -> bool:
        return bool(self.party_keys)

    def released(self, job_id: int) -> list[bytes]:
        """The wrapped keys released to us for ``job_id``, the latest first."""
        events = self.market.contract.events.KeyReleased().get_logs(
            from_block=self.market.from_block,
            argument_filters={"jobId": job_id, "to": to_checksum_address(self.address)})
        return [bytes(event["args"]["wrappedKey"]) for event in reversed(events)]

    def job_key(self, job_id: int, envelope: Envelope) -> JobKey:
        """The job's key: the one the spec wraps to us (the requester's, at posting), else a release to us.
        ``BadSpecKeyError`` when the spec's does not open the job, ``NoReleasedKeyError`` when no
        release came yet, ``BadReleasedKeyError`` when none of those that came opens this job."""
        if job_id in self._opened:
            return self._opened[job_id]
        if self.address and to_checksum_address(self.address) in envelope.keys:
            try:  # wrapped to us by the requester at posting: nothing the provider did can spoil it
                key = job_key_from_spec(envelope, self.address, self.party_keys)
            except SealedError as error:
                raise BadSpecKeyError(f"the key the job's spec wraps to us does not open the job ({error})") from None
            self._opened[job_id] = key
            return key
        releases = self.released(job_id)
        if not releases:
            raise NoReleasedKeyError(f"job {job_id}: no key released to {self.address} yet")
        failures = []
        for index, wrapped in enumerate(releases):
            try:
                key = job_key_from_release(envelope, wrapped, self.party_keys, f"release #{len(releases) - index}")
            except SealedError as error:
                failures.append(str(error))
                continue
            self._opened[job_id] = key
            return key
        raise BadReleasedKeyError(f"the provider released a key that does not open the job ({'; '.join(failures)})")


def without_key(sampled: list[int], reason: str) -> SampleAudit:
    """A sample nobody can judge here (we hold no usable key, through no fault of the provider's)."""
    return SampleAudit(sampled, [TaskAudit.unjudged(index, reason) for index in sampled], "unavailable")


def excused(sampled: list[int], reason: str) -> SampleAudit:
    """A sample the requester's own sealed job makes unusable: every task passes the provider."""
    return SampleAudit(sampled, [TaskAudit.excused(index, reason) for index in sampled], "sealed", reason)


def bad_key(sampled: list[int], error: BadReleasedKeyError) -> SampleAudit:
    """The provider released a key that does not open the job: every sampled task fails."""
    return SampleAudit(sampled, [TaskAudit.refused(index, str(error)) for index in sampled], "sealed")


def judge_sealed(references: References, store: ContentStore, spec: JobSpec, job_key: JobKey,
                 sampled: list[int], found: SampledOutputs) -> SampleAudit:
    """Judges a confidential job's sample in clear: its inputs and spec opened into a private store in a
    temporary folder (removed afterwards), an encrypted model opened once into the cache
    (``verifier.opened``), under references over that store. Inputs that
    do not open with the right key are the requester's fault: every task is excused, as for malformed
    inputs; a store that cannot find them propagates (``ContentNotFoundError``: retried)."""
    if not found.available:
        return references.judge_sample("", sampled, found)
    try:
        with opened_job(store, spec, job_key, references.a.cache / "opened") as (clear, clear_spec):
            return references.over(clear).judge_sample(clear_spec, sampled, found)
    except SealedError as error:
        reason = f"job inputs unusable ({error}); provider not at fault"
        return SampleAudit(sampled, [TaskAudit.excused(index, reason) for index in sampled], found.source,
                           str(error))


def audit_sealed(keys: JobKeys, references: References, store: ContentStore, job_id: int, spec_cid: str,
                 output_cid: str, result_root: str, num_tasks: int, sampled: list[int],
                 source: Literal["store", "chain", "either"] = "store") -> SampleAudit:
    """A confidential job's sample, for the drawn verifier's audit and a panel member's re-check alike:
    no key of ours -> inconclusive (unjudged); no key released to us yet -> ``NoReleasedKeyError``
    (the caller retries, then demands or votes); a released key that does not open the job -> fail;
    else the sealed outputs judged in clear (``judge_sealed``). ``source`` says where they come from:
    the sealed manifest in the store, the sealed reveal on-chain (``outputs.from_chain``, once a demand
    was answered), or ``either`` (a re-check: the store, else the chain). A manifest the store does not
    have (and, for ``either``, no reveal) raises ``OutputsNotFoundError`` as for a public job."""
    if not keys.usable:
        log.warning("job %d is confidential: %s", job_id, NO_KEY)
        return without_key(sampled, "this verifier holds no encryption key: it cannot open the confidential job "
                                    "(not the provider's fault)")
    spec = references.a.read_spec(spec_cid)
    if spec.confidential is None:
        return excused(sampled, "the job is confidential on-chain, but its spec has no confidential section; "
                                "provider not at fault")
    try:
        job_key = keys.job_key(job_id, spec.confidential)
    except BadReleasedKeyError as error:
        log.warning("job %d: %s", job_id, error)
        return bad_key(sampled, error)
    except BadSpecKeyError as error:
        log.warning("job %d: %s", job_id, error)
        return excused(sampled, f"{error}: the requester sealed it so; provider not at fault")
    found = _sealed_outputs(keys.market, store, job_id, output_cid, result_root, num_tasks, sampled, job_key,
                            source)
    return judge_sealed(references, store, spec, job_key, sampled, found)


def _sealed_outputs(market: JobMarket, store: ContentStore, job_id: int, output_cid: str, result_root: str,
                    num_tasks: int, sampled: list[int], job_key: JobKey,
                    source: Literal["store", "chain", "either"]) -> SampledOutputs:
    if source == "chain":
        return from_chain(market, job_id, sampled, job_key, result_root)
    try:
        return from_store(store, output_cid, result_root, num_tasks, sampled, job_key)
    except OutputsNotFoundError as missing:
        if source == "store":
            raise
        try:
            return from_chain(market, job_id, sampled, job_key, result_root)
        except OutputsUnavailableError:
            raise missing from None


def withheld(sampled: list[int], who: str = "this panel member by its commit deadline") -> SampleAudit:
    """A sample when no key reached us in time (a panel member by its commit deadline, the drawn
    verifier once its reveal demand was answered): the provider, which must release the key to each of
    us, withheld it; every task fails."""
    reason = f"no key released to {who}: the provider withheld it"
    return SampleAudit(sampled, [TaskAudit.refused(index, reason) for index in sampled], "sealed")
