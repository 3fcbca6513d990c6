"""Outputs the verifier cannot fetch, on a real chain and a real HTTP store: an outage of our own store
is retried (never a reveal demand, whatever the grace) and ends in a normal verdict; outputs never
published are demanded on-chain after the grace (by default half the audit window), and then either
revealed (the audit goes on with them) or not (``failUnrevealed`` rejects the job); a restart between
the demand and its end picks the demand up."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field

import httpx
from eth_account.signers.local import LocalAccount
from fastapi import FastAPI, Request, Response

from marketplace.chain.deployment import WEI
from marketplace.jobspec import JobSpec
from marketplace.protocol import CreditKind, JobState, Role, Verdict
from marketplace.results import MerkleTree, output_manifest
from marketplace.storage.importer import Importer
from provider.factory import create_daemon
from provider.runtime import Runtime
from tests.conftest import Chain
from tests.support.epochs import wait_drawn
from tests.support.jobs import TEXTS, Market, StoreNode
from tests.support.servers import serve
from tests.support.waiting import wait_for
from tests.verifier.test_verifier_daemon import AUDIT_ALL, make_verifier, running, seed_visible, state_of
from verifier.journal import AuditStage

__all__ = ["make_verifier"]  # the fixture, shared with the daemon's tests
GRACE = 600


@dataclass
class Outage:
    """A switch for the proxy: while ``down`` is set it answers every request 504, as a gateway would."""

    down: threading.Event = field(default_factory=threading.Event)
    refused: int = 0


def outage_proxy(upstream: str, outage: Outage) -> FastAPI:
    """A real HTTP proxy in front of the store node: forwards each request, or refuses it during the outage."""
    app = FastAPI()

    @app.api_route("/{path:path}", methods=["GET", "POST"])
    async def forward(path: str, request: Request) -> Response:
        if outage.down.is_set():
            outage.refused += 1
            return Response("upstream timed out (the test's outage)", status_code=504)
        async with httpx.AsyncClient(timeout=60) as client:
            answer = await client.request(request.method, f"{upstream}/{path}",
                                          params=list(request.query_params.multi_items()),
                                          content=await request.body(),
                                          headers={"content-type": request.headers.get("content-type", "")})
        return Response(answer.content, status_code=answer.status_code,
                        media_type=answer.headers.get("content-type"))

    return app


def test_a_brief_store_outage_is_retried_and_ends_in_a_normal_verdict(chain: Chain, market: Market, config_for,
                                                                      make_verifier, store_node: StoreNode,
                                                                      requester, provider, verifier) -> None:
    chain.register(verifier, Role.VERIFIER, 1_000 * WEI)
    outage = Outage()
    outage.down.set()
    with serve(outage_proxy(store_node.url, outage)) as proxy:
        # No grace at all: still no demand, since our store timing out says nothing about the provider.
        auditing = make_verifier(verifier, store=proxy, unavailable_grace_s=0)
        with running(create_daemon(config_for(provider), provider), auditing):
            job_id = market.post(requester, "embed", **AUDIT_ALL)
            seed_visible(chain, job_id)

            def retried() -> bool:
                record = auditing.journal.get(job_id)
                return record is not None and record.attempts >= 2 and "unavailable" in record.reason

            wait_for(retried, what="the verifier to retry the unavailable outputs")
            assert chain.market.audit_of(job_id).reveal_by == 0, "no demand for our own store's outage"
            assert auditing.journal.get(job_id).unavailable_since == 0, "no grace started: nothing is missing"
            outage.down.clear()
            wait_for(lambda: state_of(chain, job_id) == JobState.AUDITED, timeout=120, what="the verdict")
            wait_for(lambda: auditing.journal.get(job_id).stage == AuditStage.VERDICT, what="the journal")
    assert outage.refused >= 2
    assert chain.market.audit_of(job_id).verdict == Verdict.PASS
    assert not chain.market.contract.events.RevealDemanded().get_logs(from_block=0, argument_filters={"jobId": job_id})
    evidence = json.loads(market.read(auditing.journal.get(job_id).evidence_cid))
    assert evidence["outputs_source"] == "store" and evidence["verdict"] == "pass"


def unpublished_job(chain: Chain, market: Market, requester: LocalAccount, provider: LocalAccount,
                    tmp_path) -> tuple[int, list[bytes]]:
    """A job whose provider computed honest outputs and committed their root, but never put the manifest
    in any store the verifier reaches (its CID is computed, not uploaded)."""
    chain.register(provider, Role.PROVIDER, 10_000 * WEI)
    job_id = market.post(requester, "embed", **AUDIT_ALL)
    spec = JobSpec.model_validate_json(market.read(chain.market.spec_cid(job_id)))
    outputs = Runtime(market.store, tmp_path / "provider-cache").run(spec, TEXTS)
    output_cid = Importer().add_bytes(output_manifest(outputs)).cid
    chain.market.claim_job(provider, job_id)
    chain.market.submit_result(provider, job_id, str(output_cid), MerkleTree(outputs).root)
    return job_id, outputs


def wait_demanded(chain: Chain, auditing, job_id: int, grace: float = GRACE) -> None:
    """Waits for the first failed fetch, checks that nothing is demanded before the grace, moves the
    clock past it, and waits for the daemon's demand and its journal entry."""
    wait_drawn(chain, job_id)
    wait_for(lambda: auditing.journal.get(job_id).unavailable_since > 0, what="the first failed fetch")
    assert chain.market.audit_of(job_id).reveal_by == 0 and auditing.journal.get(job_id).stage == AuditStage.WAITING
    chain.increase_time(int(grace) + 1)
    wait_for(lambda: chain.market.audit_of(job_id).reveal_pending, what="the reveal demand")
    wait_for(lambda: auditing.journal.get(job_id).stage == AuditStage.DEMANDED, what="the journal's demand")


def test_outputs_never_published_are_demanded_then_the_job_fails_unrevealed(chain: Chain, market: Market,
                                                                           make_verifier, requester, provider,
                                                                           verifier, tmp_path) -> None:
    chain.register(verifier, Role.VERIFIER, 1_000 * WEI)
    job_id, _ = unpublished_job(chain, market, requester, provider, tmp_path)
    stake = chain.market.provider_stake(provider.address).stake
    auditing = make_verifier(verifier, unavailable_grace_s=GRACE)
    with running(auditing):
        wait_demanded(chain, auditing, job_id)
    [demand] = chain.market.contract.events.RevealDemanded().get_logs(from_block=0, argument_filters={"jobId": job_id})
    assert demand["args"]["verifier"] == verifier.address
    # Restarted from its journal while the demand is open: it follows the demand, and demands nothing twice.
    restarted = make_verifier(verifier, unavailable_grace_s=GRACE)
    restarted.step()
    assert restarted.journal.get(job_id).stage == AuditStage.DEMANDED and state_of(chain, job_id) == JobState.SUBMITTED
    with running(restarted):
        chain.increase_time(chain.market.params().reveal_window + 1)
        wait_for(lambda: state_of(chain, job_id) == JobState.REJECTED, what="failUnrevealed")
        wait_for(lambda: restarted.journal.get(job_id).stage == AuditStage.SETTLED, what="the journal")
    [settled] = chain.market.contract.events.JobSettled().get_logs(from_block=0, argument_filters={"jobId": job_id})
    assert settled["args"]["verdict"] == Verdict.FAIL
    assert chain.client.w3.eth.get_transaction(settled["transactionHash"])["from"] == verifier.address
    assert len(chain.market.contract.events.RevealDemanded().get_logs(
        from_block=0, argument_filters={"jobId": job_id})) == 1
    terms = chain.market.terms_of(job_id)
    assert chain.market.provider_stake(provider.address).stake == stake - terms.collateral
    credited = {entry["args"]["kind"]: entry["args"] for entry in
                chain.market.contract.events.Credited().get_logs(from_block=0, argument_filters={"jobId": job_id})}
    assert credited[CreditKind.REFUND]["account"] == requester.address
    assert CreditKind.PROVIDER_PAYMENT not in credited
    assert "did not reveal" in restarted.journal.get(job_id).reason


def test_the_grace_defaults_to_half_the_audit_window(chain: Chain, market: Market, make_verifier, requester,
                                                     provider, verifier, tmp_path) -> None:
    chain.register(verifier, Role.VERIFIER, 1_000 * WEI)
    job_id, _ = unpublished_job(chain, market, requester, provider, tmp_path)
    terms = chain.market.terms_of(job_id)
    auditing = make_verifier(verifier)  # no unavailable_grace_s: the terms decide
    assert auditing.reveals.grace_for(terms) == terms.audit_window / 2
    with running(auditing):
        wait_demanded(chain, auditing, job_id, grace=terms.audit_window / 2)
    assert chain.market.audit_of(job_id).reveal_pending


def test_revealed_outputs_are_audited_and_get_a_verdict(chain: Chain, market: Market, make_verifier, requester,
                                                        provider, verifier, tmp_path) -> None:
    chain.register(verifier, Role.VERIFIER, 1_000 * WEI)
    job_id, outputs = unpublished_job(chain, market, requester, provider, tmp_path)
    auditing = make_verifier(verifier, unavailable_grace_s=GRACE)
    with running(auditing):
        wait_demanded(chain, auditing, job_id)
        sampled = chain.market.sampled_tasks(job_id)  # public once the demand opened the secret
        tree = MerkleTree(outputs)
        chain.market.reveal_outputs(provider, job_id, [outputs[i] for i in sampled], [tree.proof(i) for i in sampled])
        wait_for(lambda: state_of(chain, job_id) == JobState.AUDITED, timeout=120, what="the verdict")
        wait_for(lambda: auditing.journal.get(job_id).stage == AuditStage.VERDICT, what="the journal")
    assert chain.market.audit_of(job_id).verdict == Verdict.PASS
    evidence = json.loads(market.read(auditing.journal.get(job_id).evidence_cid))
    assert evidence["outputs_source"] == "chain" and evidence["verdict"] == "pass"
    assert sorted(evidence["sampled_tasks"]) == sorted(sampled)


def test_a_wrong_output_cid_is_the_providers_fault_at_once(chain: Chain, market: Market, make_verifier, requester,
                                                           provider, verifier) -> None:
    """Not every fetch failure is an outage: a CID that does not parse is the provider's doing (no grace)."""
    chain.register(verifier, Role.VERIFIER, 1_000 * WEI)
    chain.register(provider, Role.PROVIDER, 10_000 * WEI)
    job_id = market.post(requester, "embed", **AUDIT_ALL)
    chain.market.claim_job(provider, job_id)
    chain.market.submit_result(provider, job_id, "not-a-cid", b"\x11" * 32)
    auditing = make_verifier(verifier, unavailable_grace_s=GRACE)
    with running(auditing):
        wait_drawn(chain, job_id)
        wait_for(lambda: state_of(chain, job_id) == JobState.AUDITED, what="the verdict")
    assert chain.market.audit_of(job_id).verdict == Verdict.FAIL
    assert chain.market.audit_of(job_id).reveal_by == 0
    assert b"output manifest unusable" in market.read(auditing.journal.get(job_id).evidence_cid)
