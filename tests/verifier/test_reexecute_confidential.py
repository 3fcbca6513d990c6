"""``webi audit --reexecute`` on a confidential job, on a real chain and a real HTTP store, with a tiny real model.

Without a key the job is left out and counted, and the audit stays clean; with the requester's keys
(the spec wraps the job key to it) or a key released to the auditor's address on-chain, its sealed
inputs, model and output manifest are opened inside the auditor's cache and its sampled tasks pass.
"""

from __future__ import annotations

from pathlib import Path

from eth_account.signers.local import LocalAccount

from marketplace.audit import Auditor
from marketplace.chain.deployment import WEI
from marketplace.jobspec import JobSpec, inputs_manifest
from marketplace.protocol import Confidentiality, Role, Verdict
from marketplace.results import MerkleTree, output_manifest
from marketplace.sealed import PartyKey
from marketplace.sealed.envelope import release_for, seal, seal_bundle, seal_job
from provider.runtime import Runtime
from tests.conftest import Chain
from tests.support.jobs import TEXTS, Market
from verifier.reexecute import create_reexecutor

CANARY = "canary-9a3c-audit"
SECRET_TEXTS = [f"{text} {CANARY}" for text in TEXTS]


def finalized_sealed_job(chain: Chain, market: Market, requester: LocalAccount, provider: LocalAccount,
                         verifier: LocalAccount, requester_key: PartyKey, auditor_key: PartyKey,
                         tmp_path: Path) -> int:
    """An Open confidential embed job, its model encrypted too, with honest outputs sealed to the job key,
    its key released on-chain to ``verifier``'s address (wrapped to ``auditor_key``), passed by that (only)
    verifier and finalized."""
    job_key, envelope = seal_job({requester.address: requester_key.recipient}, model_encrypted=True)
    sealed_model = seal_bundle(market.bundles["embed"], tmp_path / "sealed-model", envelope)
    model = market.store.add_path(sealed_model, recursive=True).cid
    inputs = market.store.add_bytes(seal(inputs_manifest(SECRET_TEXTS), envelope, "inputs")).cid
    spec = JobSpec(task="embed", model=str(model), inputs=str(inputs), num_tasks=len(SECRET_TEXTS),
                   confidential=envelope)
    job_id = market.post(requester, spec_cid=str(market.store.add_bytes(spec.to_bytes()).cid),
                         sample_tasks=len(SECRET_TEXTS), price=5 * WEI, confidentiality=Confidentiality.OPEN,
                         key_window=120)
    clear_model = market.store.add_path(market.bundles["embed"], recursive=True).cid  # the provider's opened copy
    outputs = Runtime(market.store, tmp_path / "provider-cache").run(
        spec.model_copy(update={"model": str(clear_model), "confidential": None}), SECRET_TEXTS)
    output_cid = market.store.add_bytes(seal(output_manifest(outputs), envelope, "outputs")).cid
    chain.market.claim_job(provider, job_id)
    chain.market.release_key(requester, job_id, verifier.address, release_for(job_key, auditor_key.recipient))
    chain.market.submit_result(provider, job_id, str(output_cid), MerkleTree(outputs).root)
    chain.verdict(verifier, job_id, Verdict.PASS)
    chain.settle(job_id)
    return job_id


def test_reexecution_leaves_a_confidential_job_out_without_a_key_and_passes_it_with_one(
        chain: Chain, market: Market, tmp_path: Path, requester: LocalAccount, provider: LocalAccount,
        verifier: LocalAccount) -> None:
    chain.register(provider, Role.PROVIDER, 1_000 * WEI)
    chain.register(verifier, Role.VERIFIER)
    requester_key, auditor_key = PartyKey.generate(), PartyKey.generate()
    job_id = finalized_sealed_job(chain, market, requester, provider, verifier, requester_key, auditor_key, tmp_path)

    keyless = Auditor(chain.protocol, reexecutor=create_reexecutor(market.store, tmp_path / "keyless")).run(
        reexecute=3, seed=1)
    assert keyless.clean and keyless.reexecuted == []
    assert f"1 confidential job not re-executed: no key ({job_id})" in keyless.skipped

    # A wallet with no key in the spec and none released to it: left out too, not failed.
    stranger = create_reexecutor(market.store, tmp_path / "stranger", address=provider.address,
                                 party_keys=[PartyKey.generate()], market=chain.market)
    report = Auditor(chain.protocol, reexecutor=stranger).run(reexecute=3, seed=1)
    assert report.clean and report.reexecuted == [] and any("no key" in line for line in report.skipped)

    cache = tmp_path / "requester-cache"
    as_requester = create_reexecutor(market.store, cache, address=requester.address, party_keys=[requester_key],
                                     market=chain.market)
    report = Auditor(chain.protocol, reexecutor=as_requester).run(reexecute=3, seed=1)
    assert report.clean, [verdict.reason for verdict in report.reexecuted]
    assert len(report.reexecuted) == 3 and {verdict.job_id for verdict in report.reexecuted} == {job_id}
    assert all(verdict.passed for verdict in report.reexecuted)
    assert not any("not re-executed" in line for line in report.skipped)
    assert list((cache / "scratch").iterdir()) == []  # the opened inputs were removed with the run

    # The key released on-chain to the auditor's address opens it as well.
    released = create_reexecutor(market.store, tmp_path / "released", address=verifier.address,
                                 party_keys=[auditor_key], market=chain.market)
    report = Auditor(chain.protocol, reexecutor=released).run(reexecute=2, seed=2)
    assert report.clean and len(report.reexecuted) == 2
    assert all(verdict.passed for verdict in report.reexecuted)
