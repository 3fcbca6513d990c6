"""Small settled histories on the devnet, for the indexer, node, dashboard and auditor tests.

Every helper takes the same path on every run, whatever the block hashes and wherever the chain
stands in its epoch: each draw has exactly one eligible verifier (the panel's verifier registers
after the job's verifier was drawn), and every panel exactly one eligible verifier, which holds every
seat; draws re-armed by a sync phase are drawn again (``Chain.draw``, ``epochs.draw_panel``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

from eth_account.signers.local import LocalAccount

from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import dev_account
from marketplace.jobspec import JobSpec, Shard, TaskType, inputs_manifest
from marketplace.protocol import PANEL_SIZE, ZERO_ADDRESS, Confidentiality, Role, Verdict
from marketplace.results import MerkleTree, output_manifest
from marketplace.sealed import JobKey, PartyKey, wrap
from marketplace.storage.cid import RAW, Cid
from marketplace.storage.store import ContentStore
from tests.conftest import OUTPUT_CID, SPEC_CID, Chain
from tests.support.epochs import draw_panel, outside_sync_phase, past_a_sync_phase

METADATA_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"  # any CID: never read


@dataclass(frozen=True)
class History:
    finalized: int
    cancelled: int
    open: int


def settle_history(
    chain: Chain, requester: LocalAccount, provider: LocalAccount, verifier: LocalAccount, metadata_cid: str = ""
) -> History:
    """A job passed by the only verifier and finalized, a cancelled job and an open one (price 7 WEBI);
    then the provider withdraws its payment."""
    chain.approve(provider)
    chain.market.register(provider, Role.PROVIDER, 1_000 * WEI, metadata_cid)
    chain.register(verifier, Role.VERIFIER)
    done = chain.submitted_job(requester, provider)
    chain.verdict(verifier, done, Verdict.PASS)  # draws first: the only verifier
    chain.settle(done)
    cancelled = chain.post(requester)
    chain.market.cancel_job(requester, cancelled)
    open_job = chain.post(requester, price=7 * WEI)
    chain.market.withdraw(provider)
    return History(done, cancelled, open_job)


def rejected_job(chain: Chain, requester: LocalAccount, provider: LocalAccount, verifier: LocalAccount) -> int:
    """A job the only verifier fails, settled after the challenge window: the provider is slashed."""
    job = _submitted(chain, requester, provider, b"\x22")
    chain.verdict(verifier, job, Verdict.FAIL)
    chain.settle(job)
    return job


def panel_accounts() -> list[LocalAccount]:
    """Dev account 5, the one verifier eligible for the challenge panels (1 to 4 are the named actors).

    Seats are drawn with replacement: with one candidate it holds every seat (``PANEL_SIZE`` votes),
    while with more, who sits where would follow the block hash.
    """
    return [dev_account(5)]


def challenged_job(
    chain: Chain,
    requester: LocalAccount,
    provider: LocalAccount,
    verifier: LocalAccount,
    judge: LocalAccount | None = None,
) -> int:
    """A FAIL the provider challenges, overturned by a panel voting PASS.

    The judge (``panel_accounts()``'s) registers after ``verifier`` was drawn (it stays the only
    candidate of the draw), and is the only verifier eligible for the panel: it holds every seat.
    The job settles paid; ``verifier`` loses ``verifierSlashBps`` of its stake and its audit fee.
    """
    member = judge or panel_accounts()[0]
    job = _submitted(chain, requester, provider, b"\x33")
    chain.verdict(verifier, job, Verdict.FAIL)
    chain.register(member, Role.VERIFIER)
    chain.approve(provider)
    chain.market.challenge(provider, job)
    draw_panel(chain, job)
    assert chain.market.panel_of(job).members == (member.address,) * PANEL_SIZE
    salt = b"\x5a" * 32
    chain.market.commit_vote(member, job, Verdict.PASS, salt)  # one commitment, one reveal: for every seat
    chain.market.reveal_vote(member, job, Verdict.PASS, salt)
    chain.market.resolve_challenge(chain.owner, job)
    return job


def _submitted(chain: Chain, requester: LocalAccount, provider: LocalAccount, root_byte: bytes) -> int:
    job = chain.post(requester)
    chain.market.claim_job(provider, job)
    chain.market.submit_result(provider, job, OUTPUT_CID, root_byte * 32)
    return job


GROUP_TASKS = 16  # a job group's whole job: two shards of 8 tasks, 10 WEBI each (an audit fee of 10 WEBI)
GROUP_SHARD_TASKS = 8


def group_text(task: int) -> str:
    return f"group input {task}"


def group_output(task: int) -> bytes:
    """The canonical output of the group's ``task``-th input (what a provider would commit to)."""
    return json.dumps({"text": f"output of {group_text(task)}"}).encode()


@dataclass(frozen=True)
class GroupHistory:
    """A job group of two shards (``group_history``); ``documents`` are the specs, inputs and outputs it names."""

    group_id: int
    finalized: int  # shard 0: passed and finalized, its outputs real (they rebuild its root)
    cancelled: int  # shard 1's first job: cancelled while open
    reposted: int  # shard 1 re-posted into the group: open
    documents: tuple[bytes, ...]


def group_history(chain: Chain, requester: LocalAccount, provider: LocalAccount, verifier: LocalAccount,
                  store: ContentStore | None = None) -> GroupHistory:
    """A group of two 8-task shards of a 16-task job, posted in one ``postJobGroup``: shard 0 claimed,
    submitted, passed by ``verifier`` (which must be the only one in the draw) and finalized; shard 1 cancelled,
    then re-posted into the group (a second ``GroupPosted``) and left open. The specs carry real shard sections;
    every document the group names goes into ``store`` when one is given (their CIDs are the documents')."""
    documents: list[bytes] = []

    def cid(data: bytes) -> str:
        documents.append(data)
        if store is not None:
            store.add_bytes(data)
        return str(Cid.of(data, RAW))

    requests = []
    for index in range(GROUP_TASKS // GROUP_SHARD_TASKS):
        first = index * GROUP_SHARD_TASKS
        inputs = inputs_manifest([group_text(task) for task in range(first, first + GROUP_SHARD_TASKS)])
        spec = JobSpec(task=TaskType("embed"), model=SPEC_CID, inputs=cid(inputs), num_tasks=GROUP_SHARD_TASKS,
                       shard=Shard(index=index, count=2, first_task=first, total=GROUP_TASKS))
        requests.append(chain.request(spec_cid=cid(spec.to_bytes()), num_tasks=GROUP_SHARD_TASKS, price=10 * WEI))
    chain.approve(requester)
    market = chain.market
    group_id, (finalized, cancelled) = market.post_job_group(requester, requests)
    outputs = [group_output(task) for task in range(GROUP_SHARD_TASKS)]
    market.claim_job(provider, finalized)
    market.submit_result(provider, finalized, cid(output_manifest(outputs)), MerkleTree(outputs).root)
    chain.verdict(verifier, finalized, Verdict.PASS)
    chain.settle(finalized)
    market.cancel_job(requester, cancelled)
    _, (reposted,) = market.post_job_group(requester, [replace(requests[1], claim_by=chain.now() + 3_600)], group_id)
    return GroupHistory(group_id, finalized, cancelled, reposted, tuple(documents))


@dataclass(frozen=True)
class EventfulHistory:
    """Jobs that between them emit every event of the market (see ``eventful_history``)."""

    revealed: int  # claim expired, verdict missed, outputs revealed on demand, inconclusive: finalized
    unrevealed: int  # the draw re-armed (a sync phase passed), a reveal demand the provider let expire: rejected
    dismissed: int  # a pass challenged while nobody could judge: finalized
    overturned: int  # a fail the panel overturned: finalized
    upheld: int  # a fail the panel upheld: rejected
    unvoted: int  # a pass challenged, the judge did not vote: finalized, slashed for each seat
    cancelled: int
    given_back: int  # Open confidential, its claim given back (no key came): open, and never its claimant's again
    # Open confidential: the key released, a reveal demand answered with the key and sealed outputs, passed: finalized
    confidential: int
    group: GroupHistory  # a job group of two shards: one finalized, one cancelled and re-posted (open)


def eventful_history(
    chain: Chain,
    requester: LocalAccount,
    provider: LocalAccount,
    verifier: LocalAccount,
    stranger: LocalAccount,
    judge: LocalAccount | None = None,
) -> EventfulHistory:
    """Every path of the protocol once, deterministically: ``verifier`` is the only verifier of every
    draw, and ``judge`` (``panel_accounts()``'s, registered after the last draw) holds every seat of
    every panel.

    Along the way: ``stranger`` reclaims an expired claim and redraws a missed verdict (rewards),
    governance raises ``rewardBps`` between jobs, a sync phase re-arms a draw, the judge unstakes all
    of its stake while on a panel (its no-show slashes, one a seat, come out of unbonding stake) and
    withdraws it after the cooldown, once synced out of the draw; the treasury withdraws the fees.
    Last, an Open confidential job (``confidential_job``), a job group (``group_history``), and the
    provider points its registration to a new metadata document (``METADATA_CID``).
    """
    member = judge or panel_accounts()[0]
    market = chain.market
    chain.register(provider, Role.PROVIDER)
    chain.register(verifier, Role.VERIFIER)
    params = market.params()
    outputs = [f"output {index}".encode() for index in range(16)]
    tree = MerkleTree(outputs)

    revealed = chain.post(requester)
    market.claim_job(provider, revealed)
    chain.increase_time(market.terms_of(revealed).exec_window + 1)
    market.reclaim_expired(stranger, revealed)
    market.claim_job(provider, revealed)
    market.submit_result(provider, revealed, OUTPUT_CID, tree.root)
    chain.draw(revealed)
    chain.increase_time(market.terms_of(revealed).audit_window + 1)
    # Outside a sync phase the no-show slash (to 990 WEBI, under the minimum) leaves the draw as it was
    # until a sync: the verifier stays the one candidate of the redraw.
    outside_sync_phase(chain, 1)
    market.redraw_verifier(stranger, revealed)
    chain.draw(revealed)
    market.demand_reveal(verifier, revealed, *chain.open_secret(verifier, revealed))
    sampled = market.sampled_tasks(revealed)
    market.reveal_outputs(provider, revealed, [outputs[i] for i in sampled], [tree.proof(i) for i in sampled])
    # The reveal demand opened the secret already: submitVerdict ignores the secret arguments.
    market.submit_verdict(verifier, revealed, Verdict.INCONCLUSIVE, OUTPUT_CID, bytes(32), bytes(32))
    chain.settle(revealed)

    unrevealed = _submitted(chain, requester, provider, b"\x44")
    market.add_stake(verifier, Role.VERIFIER, 10 * WEI)  # back to the minimum
    # A sync phase between the seed block and the draw (weights may have changed in it): the draw re-arms.
    past_a_sync_phase(chain, market.get_job(unrevealed).seed_block)
    chain.sync(verifier.address)  # the added stake joins the draw
    rearmed = chain.emitted(market.lock_seed(chain.owner, unrevealed), "SeedRearmed")
    assert [event["seedBlock"] for event in rearmed] == [market.get_job(unrevealed).seed_block]
    assert market.audit_of(unrevealed).verifier == ZERO_ADDRESS
    chain.draw(unrevealed)
    market.demand_reveal(verifier, unrevealed, *chain.open_secret(verifier, unrevealed))
    chain.increase_time(params.reveal_window + 1)
    market.fail_unrevealed(stranger, unrevealed)

    dismissed = _submitted(chain, requester, provider, b"\x55")
    chain.verdict(verifier, dismissed, Verdict.PASS)
    market.challenge(requester, dismissed)
    draw_panel(chain, dismissed)  # nobody but the parties: dismissed, the bond returned

    cancelled = chain.post(requester)
    market.cancel_job(requester, cancelled)
    chain.govern(market.contract.functions.setParams(replace(params, reward_bps=2_000).as_tuple()))

    overturned, upheld, unvoted = (_submitted(chain, requester, provider, bytes([byte])) for byte in (0x66, 0x77, 0x88))
    for job, verdict in ((overturned, Verdict.FAIL), (upheld, Verdict.FAIL), (unvoted, Verdict.PASS)):
        chain.verdict(verifier, job, verdict)
    chain.register(member, Role.VERIFIER)
    chain.approve(provider)
    for job, challenger in ((overturned, provider), (upheld, provider), (unvoted, requester)):
        market.challenge(challenger, job)
    for job in (overturned, upheld, unvoted):
        draw_panel(chain, job)
    salt = b"\x5a" * 32
    for job, vote in ((overturned, Verdict.PASS), (upheld, Verdict.FAIL)):
        market.commit_vote(member, job, vote, salt)
        market.reveal_vote(member, job, vote, salt)
        market.resolve_challenge(chain.owner, job)
    market.request_unstake(member, Role.VERIFIER, market.verifier_stake(member.address).stake)
    chain.increase_time(2 * params.vote_window + 1)
    market.resolve_challenge(chain.owner, unvoted)
    chain.increase_time(params.unstake_cooldown + 1)
    chain.sync(member.address)  # its weight leaves the draw first: no verifier is drawn with nothing at stake
    market.withdraw_stake(member, Role.VERIFIER)
    given_back = given_back_job(chain, requester, provider)
    confidential = confidential_job(chain, requester, provider, verifier)
    group = group_history(chain, requester, provider, verifier)
    market.update_metadata(provider, Role.PROVIDER, METADATA_CID)  # after a key rotation, say
    market.withdraw_protocol_fees(chain.owner)
    market.withdraw(verifier)
    return EventfulHistory(revealed, unrevealed, dismissed, overturned, upheld, unvoted, cancelled, given_back,
                           confidential, group)


def given_back_job(chain: Chain, requester: LocalAccount, provider: LocalAccount) -> int:
    """An Open confidential job whose claim the provider gave back, unslashed, when no key came
    (``ClaimReleased``). It may not claim that job again (``ClaimGivenBack``): the job stays open."""
    job = chain.post(requester, confidentiality=Confidentiality.OPEN, key_window=120)
    chain.market.claim_job(provider, job)
    chain.market.release_claim(provider, job)
    return job


def confidential_job(chain: Chain, requester: LocalAccount, provider: LocalAccount, verifier: LocalAccount) -> int:
    """An Open confidential job, passed by ``verifier`` (which must be the only one in the draw).

    The provider claims; the requester releases the key to it (``KeyReleased``); after the submission the verifier
    demands a reveal and the provider answers with the key released to the verifier and the sampled
    outputs sealed on-chain (``OutputsRevealed``). The wrapped keys are real age files, to throwaway
    party keys; the sealed outputs are stand-ins (nothing here opens them).
    """
    market = chain.market
    job_key = JobKey.generate()
    job = chain.post(requester, confidentiality=Confidentiality.OPEN, key_window=120)
    market.claim_job(provider, job)
    market.release_key(requester, job, provider.address, wrap(job_key, PartyKey.generate().recipient))
    market.submit_result(provider, job, OUTPUT_CID, b"\x99" * 32)
    chain.draw(job)
    market.demand_reveal(verifier, job, *chain.open_secret(verifier, job))
    market.release_key(provider, job, verifier.address, wrap(job_key, PartyKey.generate().recipient))
    sampled = market.sampled_tasks(job)  # sealed outputs: the contract cannot open them, nor does the fold
    market.reveal_outputs(provider, job, [b"age sealed output %d" % index for index in sampled], [[] for _ in sampled])
    # The reveal demand opened the secret already: submitVerdict ignores the secret arguments.
    market.submit_verdict(verifier, job, Verdict.PASS, OUTPUT_CID, bytes(32), bytes(32))
    chain.settle(job)
    return job
