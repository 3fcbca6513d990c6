"""``Client.timeline`` and ``Client.wait(on_event=...)`` on a real devnet: reveal demands, reveals, the verdict
and the settlement, each once, in chain order, with its block; the status shows a pending demand."""

from __future__ import annotations

from itertools import pairwise

from eth_account.signers.local import LocalAccount

from marketplace.client import Client
from marketplace.job_timeline import JobEvent
from marketplace.protocol import TERMINAL_STATES, JobState, Role, Verdict
from marketplace.results import MerkleTree
from tests.conftest import OUTPUT_CID, Chain
from tests.support.jobs import StoreNode


def test_the_timeline_shows_a_reveal_demand_and_the_reveal_once_each(
    chain: Chain, store_node: StoreNode, requester: LocalAccount, provider: LocalAccount, verifier: LocalAccount,
) -> None:
    chain.register(verifier, Role.VERIFIER)
    chain.register(provider, Role.PROVIDER)
    outputs = [f"output {index}".encode() for index in range(16)]
    tree = MerkleTree(outputs)
    job_id = chain.post(requester)
    chain.market.claim_job(provider, job_id)
    chain.market.submit_result(provider, job_id, OUTPUT_CID, tree.root)
    chain.draw(job_id)
    client = Client(chain.protocol, store_node.store)
    timeline = client.timeline(job_id)
    assert [event.name for event in timeline.poll()] == ["JobPosted", "JobClaimed", "ResultSubmitted",
                                                         "VerifierDrawn"]

    chain.market.demand_reveal(verifier, job_id, *chain.open_secret(verifier, job_id))
    pending = client.status(job_id)
    assert pending.reveal_by == chain.market.audit_of(job_id).reveal_by and pending.reveal_by > chain.now()
    sampled = chain.market.sampled_tasks(job_id)
    chain.market.reveal_outputs(provider, job_id, [outputs[i] for i in sampled], [tree.proof(i) for i in sampled])
    assert client.status(job_id).reveal_by is None  # answered
    new = timeline.poll()
    assert [event.name for event in new] == ["RevealDemanded", "OutputsRevealed"]
    assert new[0].text.startswith(f"verifier {verifier.address} demands the sampled outputs on-chain by ")
    assert new[1].text == f"provider revealed the outputs of tasks {', '.join(map(str, sampled))} on-chain"
    assert new[1].block == chain.block_number() and new[1].when.endswith("Z")
    assert timeline.poll() == []

    # wait(on_event): the whole history from the posting, then the verdict and the settlement, once each.
    chain.market.submit_verdict(verifier, job_id, Verdict.PASS, OUTPUT_CID, bytes(32), bytes(32))
    seen: list[JobEvent] = []
    audited = client.wait(job_id, until=TERMINAL_STATES | {JobState.AUDITED}, interval=0.05, on_event=seen.append)
    assert audited.state == JobState.AUDITED and seen[-1].text == f"verdict pass by {verifier.address} " \
        f"(evidence {OUTPUT_CID})"
    chain.settle(job_id)
    seen.clear()
    settled = client.wait(job_id, interval=0.05, on_event=seen.append)
    names = [event.name for event in seen]
    assert settled.state == JobState.FINALIZED and names[-2:] == ["VerdictSubmitted", "JobSettled"]
    assert len(names) == len(set(names)) == 8 and all(a.block <= b.block for a, b in pairwise(seen))
    assert seen[-1].text == "settled pass: the provider is paid"
