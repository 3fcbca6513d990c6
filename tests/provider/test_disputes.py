"""The provider's side of disputes, end to end on anvil: answering reveal demands, appealing failed verdicts."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence

import pytest

from marketplace.errors import ContentNotFoundError
from marketplace.jobspec import JobSpec
from marketplace.protocol import JobState, Role, Verdict
from marketplace.results import canonical, parse_output_manifest, rounded
from marketplace.storage import Cid
from provider.journal import Stage
from provider.runtime import Runtime
from tests.conftest import Chain
from tests.provider.faulty_store import faulty_store
from tests.provider.test_daemon import running
from tests.support.epochs import wait_drawn
from tests.support.jobs import TEXTS, Market
from tests.support.waiting import wait_for


class FaultyOnce(Runtime):
    """A transient hardware fault: the job's run gives reversed embeddings; any later re-run is right."""

    def run(self, spec: JobSpec, inputs: Sequence[str], *, indices: Sequence[int] | None = None,
            progress: Callable[[int], None] | None = None) -> list[bytes]:
        outputs = super().run(spec, inputs, indices=indices, progress=progress)
        if indices is not None:
            return outputs
        return [canonical({"embedding": rounded([-x for x in json.loads(output)["embedding"]])})
                for output in outputs]


def submitted_and_drawn(chain: Chain, job_id: int) -> None:
    wait_for(lambda: chain.market.get_job(job_id).state == JobState.SUBMITTED, what=f"job {job_id} submitted")
    wait_drawn(chain, job_id)


def test_answers_a_reveal_demand_from_its_own_copy(chain: Chain, market: Market, config_for, requester, provider,
                                                   verifier) -> None:
    """The verifier cannot fetch the outputs (the store now answers 504 for them) and demands a reveal: the
    daemon puts the sampled outputs and their proofs on-chain from its own copy, before the deadline."""
    chain.register(verifier, Role.VERIFIER)
    with faulty_store(market.store) as store:
        config = config_for(provider).model_copy(update={"store": store.url})
        with running(config, provider) as daemon:
            job_id = market.post(requester, "embed")
            submitted_and_drawn(chain, job_id)
            output_cid = daemon.journal.get(job_id).output_cid
            store.fail.add(output_cid)  # the outputs are gone from the store
            secret, next_hash = chain.open_secret(verifier, job_id)
            chain.market.demand_reveal(verifier, job_id, secret, next_hash)
            demanded = chain.market.audit_of(job_id)
            assert demanded.reveal_pending
            wait_for(lambda: chain.market.audit_of(job_id).reveal_by == 1, what="the outputs revealed")
            record = wait_for(lambda: (r := daemon.journal.get(job_id)) is not None and r.reveal_tx and r,
                              what="the reveal journaled")
            assert store.asked_for({output_cid}) == [], "revealed from the provider's own copy"
    revealed = chain.market.contract.events.OutputsRevealed().get_logs(from_block=0, argument_filters={"jobId": job_id})
    assert len(revealed) == 1
    indices = list(revealed[0]["args"]["taskIndices"])
    assert indices == chain.market.sampled_tasks(job_id)
    outputs = parse_output_manifest(market.read(output_cid), len(TEXTS))
    assert list(revealed[0]["args"]["outputs"]) == [outputs[i] for i in indices]
    block = chain.client.w3.eth.get_block(revealed[0]["blockNumber"])
    assert block["timestamp"] <= demanded.reveal_by
    assert record.stage == Stage.SUBMITTED and record.reason == "outputs revealed"
    assert chain.market.get_job(job_id).state == JobState.SUBMITTED  # the audit goes on


def test_an_honest_provider_challenges_a_wrong_fail(chain: Chain, market: Market, config_for, requester, provider,
                                                    verifier) -> None:
    """A dishonest verifier fails honest work: the daemon re-checks the sampled tasks, finds them right,
    approves the bond and challenges within the window."""
    chain.register(verifier, Role.VERIFIER)
    with running(config_for(provider), provider) as daemon:
        job_id = market.post(requester, "embed")
        submitted_and_drawn(chain, job_id)
        balance = chain.token.balance_of(provider.address)
        chain.verdict(verifier, job_id, Verdict.FAIL)
        wait_for(lambda: chain.market.get_job(job_id).state == JobState.CHALLENGED, what="the challenge")
        record = wait_for(lambda: (r := daemon.journal.get(job_id)) is not None and r.appeal and r,
                          what="the appeal journaled")
    terms = chain.market.terms_of(job_id)
    challenged = chain.market.contract.events.Challenged().get_logs(from_block=0, argument_filters={"jobId": job_id})
    assert [(e["args"]["challenger"], e["args"]["bond"]) for e in challenged] == [(provider.address, terms.bond)]
    assert chain.token.balance_of(provider.address) == balance - terms.bond
    panel = chain.market.panel_of(job_id)
    assert panel.challenger == provider.address and panel.bond == terms.bond
    assert record.appeal.startswith("challenged: all 4 sampled tasks re-checked within tolerance")
    assert record.challenge_tx


def test_a_provider_that_really_was_wrong_does_not_challenge(chain: Chain, market: Market, config_for, requester,
                                                             provider, verifier) -> None:
    """Its outputs came from a faulty run: the re-check disagrees with them, so no bond is put up."""
    chain.register(verifier, Role.VERIFIER)
    with running(config_for(provider), provider, runtime_class=FaultyOnce) as daemon:
        job_id = market.post(requester, "embed")
        submitted_and_drawn(chain, job_id)
        balance = chain.token.balance_of(provider.address)
        chain.verdict(verifier, job_id, Verdict.FAIL)
        record = wait_for(lambda: (r := daemon.journal.get(job_id)) is not None and r.appeal and r,
                          what="the appeal decided")
    assert record.appeal.startswith("not challenged: 4 of 4 sampled tasks differ from our own re-execution")
    assert "cosine" in record.appeal
    assert chain.market.get_job(job_id).state == JobState.AUDITED
    assert chain.market.contract.events.Challenged().get_logs(from_block=0) == []
    assert chain.token.balance_of(provider.address) == balance


def test_appeals_can_be_turned_off(chain: Chain, market: Market, config_for, requester, provider,
                                   verifier) -> None:
    chain.register(verifier, Role.VERIFIER)
    with running(config_for(provider, appeal_fails=False), provider) as daemon:
        job_id = market.post(requester, "embed")
        submitted_and_drawn(chain, job_id)
        chain.verdict(verifier, job_id, Verdict.FAIL)
        wait_for(lambda: "audited (fail)" in (daemon.journal.get(job_id).reason or ""), what="the fail seen")
        chain.increase_time(chain.market.terms_of(job_id).challenge_window + 1)
        wait_for(lambda: daemon.journal.get(job_id).stage == Stage.REJECTED, what="the rejection")
    assert chain.market.contract.events.Challenged().get_logs(from_block=0) == []
    assert daemon.journal.get(job_id).appeal == ""


def test_a_reveal_demand_is_answered_while_a_long_job_computes(chain: Chain, market: Market, config_for, requester,
                                                               provider, verifier) -> None:
    """A reveal demand timed to coincide with a large job: the daemon computes on a worker thread, so it
    reveals the first job's outputs on-chain while the second job's computation is still under way
    (the test holds that computation open until the reveal is in), then submits the second job too."""
    chain.register(verifier, Role.VERIFIER)
    computing, release = threading.Event(), threading.Event()
    full_runs: list[int] = []

    class LongSecondJob(Runtime):
        """The second job's run lasts until the test lets it end; every other run is the plain one."""

        def run(self, spec: JobSpec, inputs: Sequence[str], *, indices: Sequence[int] | None = None,
                progress: Callable[[int], None] | None = None) -> list[bytes]:
            if indices is None:
                full_runs.append(len(inputs))
                if len(full_runs) == 2:
                    computing.set()
                    if not release.wait(timeout=120):
                        raise RuntimeError("the test never let the long job finish")
            return super().run(spec, inputs, indices=indices, progress=progress)

    with running(config_for(provider), provider, runtime_class=LongSecondJob) as daemon:
        first = market.post(requester, "embed")
        submitted_and_drawn(chain, first)
        second = market.post(requester, "embed")
        try:
            wait_for(computing.is_set, what="the second job computing")
            secret, next_hash = chain.open_secret(verifier, first)
            chain.market.demand_reveal(verifier, first, secret, next_hash)
            wait_for(lambda: chain.market.audit_of(first).reveal_by == 1, what="the reveal, during the computation")
            assert not release.is_set()
            assert chain.market.get_job(second).state == JobState.CLAIMED, "the second job is still computing"
            assert daemon.journal.get(second).stage == Stage.CLAIMED
        finally:
            release.set()
        wait_for(lambda: chain.market.get_job(second).state == JobState.SUBMITTED, what="the long job submitted")
    revealed = chain.market.contract.events.OutputsRevealed().get_logs(from_block=0, argument_filters={"jobId": first})
    assert [list(entry["args"]["taskIndices"]) for entry in revealed] == [chain.market.sampled_tasks(first)]
    assert full_runs == [len(TEXTS), len(TEXTS)]
    assert daemon.journal.get(first).reason == "outputs revealed"


def test_outputs_the_store_dropped_are_published_again_when_challenged(chain: Chain, market: Market, config_for,
                                                                        requester, provider, verifier) -> None:
    """The store's owner unpins and garbage-collects the outputs after the draw; the verifier fails the job,
    the provider challenges, and re-adds its archived outputs (the same CID) before the panel is drawn."""
    chain.register(verifier, Role.VERIFIER)
    store = market.store  # the LocalStore behind the HTTP store the daemon uses
    republished: list[tuple[int, JobState, int]] = []

    def note(point: str, job_id: int) -> None:
        if point == "republished":
            republished.append((job_id, chain.market.get_job(job_id).state, chain.market.panel_of(job_id).size))

    with running(config_for(provider), provider, hook=note) as daemon:
        job_id = market.post(requester, "embed")
        submitted_and_drawn(chain, job_id)
        wait_for(lambda: daemon.journal.get(job_id).republished == "draw-1", what="the outputs re-added for the draw")
        output_cid = Cid.parse(daemon.journal.get(job_id).output_cid)
        manifest = store.read_bytes(output_cid)
        store.unpin(output_cid)
        assert store.gc().blocks >= 1
        with pytest.raises(ContentNotFoundError):
            store.read_bytes(output_cid)
        chain.verdict(verifier, job_id, Verdict.FAIL)
        wait_for(lambda: daemon.journal.get(job_id).republished == "challenge", what="the outputs re-added")
        assert store.read_bytes(output_cid) == manifest
        assert output_cid in store.pins()
    assert republished == [(job_id, JobState.SUBMITTED, 0), (job_id, JobState.CHALLENGED, 0)]
    assert parse_output_manifest(manifest, len(TEXTS))[0].startswith(b'{"embedding"')
