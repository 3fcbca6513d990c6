"""Confidential jobs on the provider's side, against a real anvil, a real store server and a real daemon.

The test plays the requester (``seal_job``, the sealed inputs, ``market.release_key``) and the
verifier (a published key) by hand, so that only the provider's side is under test.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import Devnet, dev_account
from marketplace.jobspec import JobSpec, inputs_manifest
from marketplace.protocol import Allowlist, Confidentiality, JobState, Role, Verdict, secret_hash
from marketplace.results import MerkleTree, parse_output_manifest, verify_proof
from marketplace.sealed import PartyKey, ensure, key_path_for, sign_encryption_key
from marketplace.sealed.age import MAGIC
from marketplace.sealed.directory import published_recipient
from marketplace.sealed.envelope import (
    Envelope,
    job_key_from_release,
    open_revealed,
    open_sealed,
    release_for,
    seal,
    seal_bundle,
    seal_job,
)
from marketplace.sealed.keys import JobKey, kdf_of
from marketplace.storage import Cid
from provider.cli import registration_metadata
from provider.config import ProviderConfig, load_config
from provider.daemon import ProviderDaemon
from provider.factory import create_daemon
from provider.journal import Stage
from tests.conftest import Chain
from tests.provider.test_cli import webi
from tests.provider.test_daemon import running, stage_of
from tests.support.epochs import draw_panel, wait_drawn
from tests.support.jobs import PASSWORD, TEXTS, Market, StoreNode, provider_config
from tests.support.waiting import wait_for

CANARY = "canary-7c1d9e-the-requester's-secret-input"
SEALED_TEXTS = [*TEXTS[:-1], CANARY]


@dataclass(frozen=True)
class SealedJob:
    job_id: int
    job_key: JobKey
    envelope: Envelope


def party_key(account: LocalAccount) -> PartyKey:
    """A party's encryption key, the same on every run (fixed randomness: derived from its dev account)."""
    return PartyKey.from_secret_bytes(bytes(account.key))


def publish(chain: Chain, market: Market, account: LocalAccount, role: Role, recipient: str,
            document: dict[str, object] | None = None) -> None:
    """Registers ``account`` as ``role`` with a metadata document that carries its signed encryption key."""
    signed = sign_encryption_key(account, recipient, chain.client.chain_id)
    cid = market.store.add_bytes(json.dumps({**(document or {}), **signed}).encode()).cid
    chain.approve(account)
    chain.market.register(account, role, (10_000 if role is Role.PROVIDER else 1_000) * WEI, str(cid))
    if role is Role.VERIFIER:
        chain.market.commit_secret(account, secret_hash(chain.secret(account, 0)))
        chain.sync(account.address)


def sealed_provider(chain: Chain, market: Market, devnet: Devnet, store_node: StoreNode, deployments: Path,
                    tmp_path: Path, account: LocalAccount, *, published: bool = True) -> ProviderConfig:
    """A provider whose key file sits beside its keystore; registered with that key published (or not)."""
    config = load_config(provider_config(tmp_path, account, devnet.anvil.rpc_url, store_node.url, deployments))
    kdf, iterations = kdf_of(config.keystore)
    key = ensure(key_path_for(config.keystore), PASSWORD, kdf=kdf, iterations=iterations)
    if published:
        document = json.loads(registration_metadata(config))
        publish(chain, market, account, Role.PROVIDER, key.recipient, document)
    else:
        chain.register(account, Role.PROVIDER, 10_000 * WEI)
    return config


def post_sealed(chain: Chain, market: Market, requester: LocalAccount, confidentiality: Confidentiality, *,
                wrapped_to: dict[str, str] | None = None, key_window: int = 0,
                allowlist: tuple[str, ...] = (), sealed_model: Path | None = None) -> SealedJob:
    """Posts a confidential embed job over ``SEALED_TEXTS`` as a requester does: inputs sealed, key wrapped;
    with ``sealed_model`` (a folder to write it in), the model bundle encrypted too."""
    job_key, envelope = seal_job({requester.address: party_key(requester).recipient, **(wrapped_to or {})},
                                 model_encrypted=sealed_model is not None)
    inputs = market.store.add_bytes(seal(inputs_manifest(SEALED_TEXTS), envelope, "the inputs")).cid
    bundle = market.bundles["embed"]
    if sealed_model is not None:
        bundle = seal_bundle(bundle, sealed_model, envelope)
    model = market.store.add_path(bundle, recursive=True).cid
    spec = JobSpec(task="embed", model=str(model), inputs=str(inputs), num_tasks=len(SEALED_TEXTS),
                   allowlist=allowlist, confidential=envelope)
    spec_cid = market.store.add_bytes(spec.to_bytes()).cid
    root = Allowlist(allowlist).root if allowlist else b"\x00" * 32
    job_id = chain.post(requester, spec_cid=str(spec_cid), num_tasks=len(SEALED_TEXTS), price=10 * WEI,
                        confidentiality=confidentiality, key_window=key_window, allowlist_root=root)
    return SealedJob(job_id, job_key, envelope)


def store_files(market: Market) -> list[bytes]:
    return [path.read_bytes() for path in market.store.root.rglob("*") if path.is_file()]


def waiting_for_key(daemon: ProviderDaemon, job_id: int) -> bool:
    record = daemon.journal.get(job_id)
    return record is not None and record.stage == Stage.CLAIMED and "waiting for the job key" in record.reason


def claimed(chain: Chain, job_id: int) -> bool:
    return chain.market.get_job(job_id).state == JobState.CLAIMED


def test_an_open_job_runs_on_the_released_key_and_the_key_goes_on_to_the_verifier(
        chain: Chain, market: Market, devnet: Devnet, store_node: StoreNode, deployments: Path, tmp_path: Path,
        requester, provider, verifier, caplog: pytest.LogCaptureFixture) -> None:
    """Claimed with no key (and stopped while it waits: the next start looks for the key again), run once
    the requester releases it, the encrypted model opened and checked, outputs sealed in the store; the
    drawn verifier then gets the key from the provider, wrapped to its published key."""
    caplog.set_level(logging.DEBUG)
    publish(chain, market, verifier, Role.VERIFIER, party_key(verifier).recipient)
    config = sealed_provider(chain, market, devnet, store_node, deployments, tmp_path, provider)
    with running(config, provider) as first:
        job = post_sealed(chain, market, requester, Confidentiality.OPEN, key_window=120,
                          sealed_model=tmp_path / "sealed-model")
        wait_for(lambda: claimed(chain, job.job_id) and waiting_for_key(first, job.job_id),
                 what="the claim, waiting for the key")
    recipient = published_recipient(chain.market, market.store, provider.address, Role.PROVIDER)
    chain.market.release_key(requester, job.job_id, provider.address, release_for(job.job_key, recipient))
    with running(config, provider) as daemon:
        wait_for(lambda: stage_of(daemon, job.job_id) == Stage.SUBMITTED, what="the result on-chain")
        audit = wait_drawn(chain, job.job_id)
        assert audit.verifier == verifier.address
        wait_for(lambda: chain.market.contract.events.KeyReleased().get_logs(
            from_block=0, argument_filters={"jobId": job.job_id, "from": provider.address}), what="the release")
        secret, next_hash = chain.open_secret(verifier, job.job_id)
        chain.market.demand_reveal(verifier, job.job_id, secret, next_hash)  # answered with sealed outputs
        answered = wait_for(lambda: chain.market.contract.events.OutputsRevealed().get_logs(
            from_block=0, argument_filters={"jobId": job.job_id}), what="the reveal answered")
    assert not chain.market.audit_of(job.job_id).reveal_pending
    releases = chain.market.contract.events.KeyReleased().get_logs(
        from_block=0, argument_filters={"jobId": job.job_id, "from": provider.address})
    assert [entry["args"]["to"] for entry in releases] == [verifier.address]  # once: at the draw
    opened = job_key_from_release(job.envelope, bytes(releases[0]["args"]["wrappedKey"]), [party_key(verifier)])
    assert opened.recipient == job.job_key.recipient
    revealed = answered[0]["args"]
    assert all(bytes(blob).startswith(MAGIC) for blob in revealed["outputs"]), "the revealed outputs are sealed"
    assert not any(CANARY.encode() in bytes(blob) for blob in revealed["outputs"])

    submitted = chain.market.contract.events.ResultSubmitted().get_logs(
        from_block=0, argument_filters={"jobId": job.job_id})[0]["args"]
    sealed_outputs = market.read(submitted["outputCid"])
    assert sealed_outputs.startswith(MAGIC), "the stored output manifest is an age file"
    manifest = open_sealed(sealed_outputs, job.job_key, "the outputs")
    outputs = parse_output_manifest(manifest, len(SEALED_TEXTS))
    assert MerkleTree(outputs).root == submitted["resultRoot"], "the root is over the plaintext outputs"
    for index, blob in zip(revealed["taskIndices"], revealed["outputs"], strict=True):
        output, proof = open_revealed(bytes(blob), job.job_key, f"task {index}")
        assert output == outputs[index] and verify_proof(submitted["resultRoot"], index, output, proof)
    blocks = store_files(market)
    assert not any(CANARY.encode() in block for block in blocks), "an input in clear reached the store"
    assert not any(outputs[0] in block for block in blocks), "an output in clear reached the store"
    logged = caplog.text
    assert "giving the claim back" not in logged and "key released to verifier" in logged
    assert CANARY not in logged and job.job_key.identity not in logged and outputs[0].decode() not in logged
    archived = daemon.archive.load(job.job_id) if daemon.archive is not None else None
    assert archived == sealed_outputs, "the archive keeps the exact ciphertext (its CID is the committed one)"


def test_an_open_job_without_a_key_in_the_window_is_given_back_unslashed(
        chain: Chain, market: Market, devnet: Devnet, store_node: StoreNode, deployments: Path, tmp_path: Path,
        requester, provider) -> None:
    config = sealed_provider(chain, market, devnet, store_node, deployments, tmp_path, provider)
    with running(config, provider) as daemon:
        job = post_sealed(chain, market, requester, Confidentiality.OPEN, key_window=60)
        wait_for(lambda: claimed(chain, job.job_id), what="the claim")
        chain.increase_time(61)
        chain.mine()
        wait_for(lambda: stage_of(daemon, job.job_id) == Stage.SKIPPED, what="the claim given back")
    record = daemon.journal.get(job.job_id)
    assert record is not None and "no key was released" in record.reason
    assert record.claim_tx and record.release_tx and record.claim_tx != record.release_tx
    released = chain.market.contract.events.ClaimReleased().get_logs(from_block=0,
                                                                   argument_filters={"jobId": job.job_id})
    assert [entry["args"]["provider"] for entry in released] == [provider.address]
    assert chain.market.get_job(job.job_id).state == JobState.OPEN
    stake = chain.market.provider_stake(provider.address)
    assert stake.stake == 10_000 * WEI and stake.locked == 0


def test_a_garbage_key_or_another_jobs_key_is_given_back(chain: Chain, market: Market, devnet: Devnet,
                                                        store_node: StoreNode, deployments: Path, tmp_path: Path,
                                                        requester, provider) -> None:
    config = sealed_provider(chain, market, devnet, store_node, deployments, tmp_path, provider)
    recipient = published_recipient(chain.market, market.store, provider.address, Role.PROVIDER)
    with running(config, provider) as daemon:
        daemon.throughput.record("embed", 10_000, 1.0)  # measured: two claims fit (provider.capacity)
        garbage = post_sealed(chain, market, requester, Confidentiality.OPEN, key_window=120)
        other = post_sealed(chain, market, requester, Confidentiality.OPEN, key_window=120)
        wait_for(lambda: claimed(chain, garbage.job_id) and claimed(chain, other.job_id), what="both claims")
        chain.market.release_key(requester, garbage.job_id, provider.address, b"not an age file at all")
        chain.market.release_key(requester, other.job_id, provider.address,
                                 release_for(JobKey.generate(), recipient))
        for job in (garbage, other):
            wait_for(lambda job=job: stage_of(daemon, job.job_id) == Stage.SKIPPED, what=f"job {job.job_id} given back")
    for job in (garbage, other):
        record = daemon.journal.get(job.job_id)
        assert record is not None and "the released key does not open the job" in record.reason
        assert chain.market.get_job(job.job_id).state == JobState.OPEN
    assert "another job's key" in daemon.journal.get(other.job_id).reason
    assert chain.market.provider_stake(provider.address).locked == 0


def test_directed_jobs_are_claimed_only_when_the_spec_key_opens(chain: Chain, market: Market, devnet: Devnet,
                                                                store_node: StoreNode, deployments: Path,
                                                                tmp_path: Path, requester, provider) -> None:
    """A Directed job's key comes from the spec: run when it opens, never claimed when it is wrapped for
    another key. An Open job is refused while the provider's registration publishes no key."""
    config = sealed_provider(chain, market, devnet, store_node, deployments, tmp_path, provider, published=False)
    ours = PartyKey.load(key_path_for(config.keystore), PASSWORD).recipient
    listed = (provider.address,)
    with running(config, provider) as daemon:
        good = post_sealed(chain, market, requester, Confidentiality.DIRECTED, allowlist=listed,
                           wrapped_to={provider.address: ours})
        foreign = post_sealed(chain, market, requester, Confidentiality.DIRECTED, allowlist=listed,
                              wrapped_to={provider.address: party_key(dev_account(9)).recipient})
        unpublished = post_sealed(chain, market, requester, Confidentiality.OPEN, key_window=120)
        wait_for(lambda: stage_of(daemon, good.job_id) == Stage.SUBMITTED, what="the Directed job's result")
        for job in (foreign, unpublished):
            wait_for(lambda job=job: stage_of(daemon, job.job_id) == Stage.SKIPPED, what=f"job {job.job_id} skipped")
    assert "confidential job refused" in daemon.journal.get(foreign.job_id).reason
    assert "publishes no usable key" in daemon.journal.get(unpublished.job_id).reason
    claims = chain.market.contract.events.JobClaimed().get_logs(from_block=0)
    assert [entry["args"]["jobId"] for entry in claims] == [good.job_id]
    submitted = chain.market.contract.events.ResultSubmitted().get_logs(from_block=0)[0]["args"]
    outputs = parse_output_manifest(open_sealed(market.read(submitted["outputCid"]), good.job_key, "the outputs"),
                                    len(SEALED_TEXTS))
    assert MerkleTree(outputs).root == submitted["resultRoot"]


def test_without_a_key_file_confidential_jobs_are_refused_and_public_ones_served(
        chain: Chain, market: Market, config_for, requester, provider) -> None:
    with running(config_for(provider), provider) as daemon:
        sealed = post_sealed(chain, market, requester, Confidentiality.OPEN, key_window=120)
        public = market.post(requester, "embed")
        wait_for(lambda: stage_of(daemon, public) == Stage.SUBMITTED, what="the public job's result")
        wait_for(lambda: stage_of(daemon, sealed.job_id) == Stage.SKIPPED, what="the confidential job skipped")
    assert "no encryption key" in daemon.journal.get(sealed.job_id).reason


def test_register_creates_the_key_and_publishes_it_signed(chain: Chain, devnet: Devnet, store_node: StoreNode,
                                                          deployments: Path, tmp_path: Path) -> None:
    account = dev_account(7)
    config = provider_config(tmp_path, account, devnet.anvil.rpc_url, store_node.url, deployments)
    registered = webi("register", "--stake", "2500", "-c", str(config), home=tmp_path)
    assert registered.returncode == 0, registered.stderr
    key_file = key_path_for(load_config(config).keystore)
    recipient = PartyKey.load(key_file, PASSWORD).recipient
    assert published_recipient(chain.market, store_node.store, account.address, Role.PROVIDER) == recipient
    metadata = registered.stdout.split("metadata ")[1].split()[0]
    assert json.loads(store_node.store.read_bytes(Cid.parse(metadata)))["kind"] == "webi-provider"


def test_an_encrypted_model_is_opened_into_the_cache_under_its_ciphertext_cid(
        chain: Chain, market: Market, devnet: Devnet, store_node: StoreNode, deployments: Path, tmp_path: Path,
        requester, provider) -> None:
    """A Directed job whose model is sealed too: opened with the key before the claim, checked in clear, run."""
    config = sealed_provider(chain, market, devnet, store_node, deployments, tmp_path, provider, published=False)
    ours = PartyKey.load(key_path_for(config.keystore), PASSWORD).recipient
    with running(config, provider) as daemon:
        job = post_sealed(chain, market, requester, Confidentiality.DIRECTED, allowlist=(provider.address,),
                          wrapped_to={provider.address: ours}, sealed_model=tmp_path / "sealed-model")
        wait_for(lambda: stage_of(daemon, job.job_id) == Stage.SUBMITTED, what="the result on-chain")
    spec = JobSpec.model_validate_json(market.read(chain.market.spec_cid(job.job_id)))
    opened = config.state / "cache" / "models" / str(Cid.parse(spec.model).to_v1())
    clear_config = (market.bundles["embed"] / "config.json").read_bytes()
    assert (opened / "config.json").read_bytes() == clear_config, "the cache holds the opened bundle"
    assert not any(clear_config in block for block in store_files(market)), "the model in clear reached the store"
    submitted = chain.market.contract.events.ResultSubmitted().get_logs(from_block=0)[0]["args"]
    outputs = parse_output_manifest(open_sealed(market.read(submitted["outputCid"]), job.job_key, "the outputs"),
                                    len(SEALED_TEXTS))
    assert MerkleTree(outputs).root == submitted["resultRoot"]


def test_a_failed_confidential_job_is_rechecked_in_clear_and_the_panel_gets_the_key(
        chain: Chain, market: Market, devnet: Devnet, store_node: StoreNode, deployments: Path, tmp_path: Path,
        requester, provider, verifier) -> None:
    """A wrong fail: the provider opens its sealed outputs and inputs to re-check, challenges, and releases
    the key to each panel member (once each) as well as to the verifier it drew."""
    second = dev_account(10)
    for account in (verifier, second):
        publish(chain, market, account, Role.VERIFIER, party_key(account).recipient)
    config = sealed_provider(chain, market, devnet, store_node, deployments, tmp_path, provider, published=False)
    ours = PartyKey.load(key_path_for(config.keystore), PASSWORD).recipient

    def released_to() -> list[str]:
        return [entry["args"]["to"] for entry in chain.market.contract.events.KeyReleased().get_logs(
            from_block=0, argument_filters={"jobId": job.job_id, "from": provider.address})]

    with running(config, provider) as daemon:
        job = post_sealed(chain, market, requester, Confidentiality.DIRECTED, allowlist=(provider.address,),
                          wrapped_to={provider.address: ours})
        wait_for(lambda: stage_of(daemon, job.job_id) == Stage.SUBMITTED, what="the result on-chain")
        drawn = next(account for account in (verifier, second)
                     if account.address == wait_drawn(chain, job.job_id).verifier)
        wait_for(lambda: released_to() == [drawn.address], what="the key released to the drawn verifier")
        chain.verdict(drawn, job.job_id, Verdict.FAIL)
        record = wait_for(lambda: (r := daemon.journal.get(job.job_id)) is not None and r.appeal and r,
                          what="the appeal decided")
        assert record.appeal.startswith("challenged: all 4 sampled tasks re-checked within tolerance")
        draw_panel(chain, job.job_id)
        members = set(chain.market.panel_of(job.job_id).members)
        assert members and drawn.address not in members
        wait_for(lambda: set(released_to()) == {drawn.address, *members}, what="the key released to the panel")
    assert sorted(released_to()) == sorted([drawn.address, *members]), "once per party"


def test_a_verifier_without_a_published_key_gets_none_and_the_journal_says_why(
        chain: Chain, market: Market, devnet: Devnet, store_node: StoreNode, deployments: Path, tmp_path: Path,
        requester, provider, verifier) -> None:
    chain.register(verifier, Role.VERIFIER)  # no metadata document: no key to wrap the job key to
    config = sealed_provider(chain, market, devnet, store_node, deployments, tmp_path, provider, published=False)
    ours = PartyKey.load(key_path_for(config.keystore), PASSWORD).recipient
    with running(config, provider) as daemon:
        job = post_sealed(chain, market, requester, Confidentiality.DIRECTED, allowlist=(provider.address,),
                          wrapped_to={provider.address: ours})
        wait_for(lambda: stage_of(daemon, job.job_id) == Stage.SUBMITTED, what="the result on-chain")
        wait_drawn(chain, job.job_id)
        record = wait_for(lambda: (r := daemon.journal.get(job.job_id)) is not None
                          and "published no encryption key" in r.reason and r, what="the note")
    assert verifier.address in record.reason
    assert chain.market.contract.events.KeyReleased().get_logs(from_block=0) == []


class Crash(BaseException):
    """Stops a daemon's step at a named point, as ``kill -9`` would (nothing after it runs)."""


def crashed(daemon: ProviderDaemon) -> bool:
    """One step of ``daemon``; whether it crashed."""
    try:
        daemon.step()
    except Crash:
        return True
    return False


def test_a_crash_after_the_claim_is_given_back_ends_the_record_on_restart(
        chain: Chain, market: Market, devnet: Devnet, store_node: StoreNode, deployments: Path, tmp_path: Path,
        requester, provider) -> None:
    """``releasing`` is journaled before ``releaseClaim``: a restart after the transaction sees the job Open
    again and ends the record as given back, sending nothing more."""
    config = sealed_provider(chain, market, devnet, store_node, deployments, tmp_path, provider)

    def crash_after_release(point: str, job_id: int) -> None:
        if point == "release-sent":
            raise Crash(job_id)

    job = post_sealed(chain, market, requester, Confidentiality.OPEN, key_window=60)
    first = create_daemon(config, provider, hook=crash_after_release)
    try:
        wait_for(lambda: first.step() or claimed(chain, job.job_id), what="the claim")
        chain.increase_time(61)
        chain.mine()
        wait_for(lambda: crashed(first), what="the crash after the release")  # once the record is due again
        assert stage_of(first, job.job_id) == Stage.RELEASING
    finally:
        first.close()
    assert chain.market.get_job(job.job_id).state == JobState.OPEN
    with running(config, provider) as daemon:
        wait_for(lambda: stage_of(daemon, job.job_id) == Stage.SKIPPED, what="the record ended")
    assert daemon.journal.get(job.job_id).reason.startswith("claim given back: no key was released")
    released = chain.market.contract.events.ClaimReleased().get_logs(from_block=0)
    assert len(released) == 1
