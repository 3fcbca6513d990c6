"""``webi audit --from-block N``: jobs that began before N are replayed and checked, not crashed on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from typer.testing import CliRunner

from marketplace.audit import Auditor
from marketplace.chain.client import ChainClient
from marketplace.chain.deployment import WEI, connect_protocol, protocol_abis
from marketplace.chain.devnet import Devnet
from marketplace.cli.main import app
from marketplace.history import ChainEvent, fetch_events
from marketplace.indexer.indexer import decoder_for
from marketplace.protocol import Role, Verdict
from tests.conftest import Chain
from tests.marketplace.audit.conftest import PrunedNode
from tests.support.history import EventfulHistory, eventful_history, settle_history


def market_events(devnet: Devnet, head: int) -> list[ChainEvent]:
    decoder = decoder_for(devnet.protocol.deployment)
    return [event for event in fetch_events(devnet.client, decoder, 0, head) if event.contract == "market"]


def block_of(events: list[ChainEvent], name: str, job_id: int) -> int:
    return next(event.block_number for event in events if event.name == name and event.job_id == job_id)


def spanning(events: list[ChainEvent], start: int) -> set[int]:
    """The jobs with events both before ``start`` and from it on."""
    before = {event.job_id for event in events if event.job_id is not None and event.block_number < start}
    after = {event.job_id for event in events if event.job_id is not None and event.block_number >= start}
    return {job_id for job_id in before & after if job_id is not None}


def test_a_job_posted_before_the_start_and_settled_after_it_is_checked(
    chain: Chain,
    devnet: Devnet,
    deployments: Path,
    requester: LocalAccount,
    provider: LocalAccount,
    verifier: LocalAccount,
) -> None:
    history = settle_history(chain, requester, provider, verifier)  # job 3 is left open, at 7 WEBI
    start = chain.block_number() + 1
    chain.market.claim_job(provider, history.open)
    chain.market.submit_result(provider, history.open, "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4",
                               b"\x99" * 32)
    chain.verdict(verifier, history.open, Verdict.PASS)
    chain.settle(history.open)

    report = Auditor(devnet.protocol, from_block=start).run()
    assert report.clean, [str(item) for item in report.discrepancies]
    assert report.skipped == [] and not report.balance_checks
    (job,) = report.jobs
    assert (job.job_id, job.state, job.partial_since, job.price) == (history.open, "finalized", start, str(7 * WEI))
    # Paid by its posted terms: 7 WEBI less the 2.5 % protocol fee to the provider, the audit fee to the verifier.
    paid = {(credit.kind, credit.account): int(credit.amount) for credit in job.credits}
    assert paid[("provider_payment", provider.address)] == 7 * WEI - 7 * WEI * 250 // 10_000
    assert ("verifier_fee", verifier.address) in paid
    tallies = {tally.name: tally for tally in report.checks}
    assert tallies["settlement split"].count == 1 and tallies["settlement split"].passed
    assert tallies["job state at the start block"].count == 1 and tallies["job state at the start block"].passed
    # The accounts it names were read as they stood before the start: the provider's stake is all there.
    accounts = {account.address: account for account in report.accounts}
    assert [stake.stake for stake in accounts[provider.address].stakes] == [str(1_000 * WEI)]

    result = CliRunner().invoke(app, ["--rpc-url", devnet.anvil.rpc_url, "audit", "--deployments",
                                      str(deployments), "--from-block", str(start)])
    output = " ".join(result.output.split())
    assert result.exit_code == 0, output
    assert f"jobs posted before block {start}, replayed from their own events" in output
    assert output.endswith("agrees with the chain")


def eventful(chain: Chain, requester: LocalAccount, provider: LocalAccount, verifier: LocalAccount,
             stranger: LocalAccount) -> EventfulHistory:
    return eventful_history(chain, requester, provider, verifier, stranger)


def starts(events: list[ChainEvent], history: EventfulHistory, market_block: int) -> dict[str, int]:
    """Start blocks that cut each path of the protocol in two."""
    return {
        "in the block the market was deployed": market_block,
        "between a claim's expiry and the verifier's no-show": block_of(events, "VerifierMissed", history.revealed),
        "between the reveal demand and the inconclusive verdict": block_of(events, "OutputsRevealed",
                                                                           history.revealed),
        "after the draw was re-armed": block_of(events, "VerifierDrawn", history.unrevealed),
        "between a verdict and its challenge": block_of(events, "Challenged", history.overturned),
        "between the panel's draw and its vote": block_of(events, "VoteCommitted", history.overturned),
        "between the judge's unstaking and its no-show slashes": block_of(events, "ChallengeResolved",
                                                                          history.unvoted),
    }


def test_every_late_start_agrees_with_the_chain(
    chain: Chain,
    devnet: Devnet,
    requester: LocalAccount,
    provider: LocalAccount,
    verifier: LocalAccount,
    stranger: LocalAccount,
) -> None:
    history = eventful(chain, requester, provider, verifier, stranger)
    events = market_events(devnet, chain.block_number())
    for why, start in starts(events, history, devnet.protocol.deployment.block).items():
        report = Auditor(devnet.protocol, from_block=start).run()
        assert report.clean, (why, [str(item) for item in report.discrepancies])
        assert report.skipped == [], why
        carried = {job.job_id for job in report.jobs if job.partial_since is not None}
        assert carried == spanning(events, start), why
        settled = [job for job in report.jobs if job.state in ("finalized", "rejected", "cancelled")]
        tallies = {tally.name: tally.count for tally in report.checks}
        assert tallies.get("settlement split", 0) == len(report.jobs) and settled, why


def test_a_late_start_names_a_lost_slash_of_a_job_it_carried_in(
    chain: Chain,
    devnet: Devnet,
    dropping: list[Any],
    requester: LocalAccount,
    provider: LocalAccount,
    verifier: LocalAccount,
    stranger: LocalAccount,
) -> None:
    history = eventful(chain, requester, provider, verifier, stranger)
    events = market_events(devnet, chain.block_number())
    start = block_of(events, "Challenged", history.overturned)  # posted, claimed, audited before the start
    dropping.append(lambda event: event.name == "Slashed" and event.job_id == history.overturned
                    and event.args["role"] == Role.VERIFIER)
    report = Auditor(devnet.protocol, from_block=start).run()
    found = {(item.check, item.job_id) for item in report.discrepancies}
    assert found == {("slashes", history.overturned)}
    (item,) = report.discrepancies
    # Half the verifier's stake as it stood at the resolution (read at the start, then replayed).
    stake = chain.market.verifier_stake(verifier.address).stake
    assert item.expected == f"1x {verifier.address} as verifier: {stake} from stake + 0 from unbonding"
    assert item.found == "none"
    assert [job.discrepancies for job in report.jobs if job.job_id == history.overturned] == [1]


def test_a_node_without_old_state_skips_what_needs_it_and_says_so(
    chain: Chain,
    devnet: Devnet,
    pruned_node: PrunedNode,
    requester: LocalAccount,
    provider: LocalAccount,
    verifier: LocalAccount,
    stranger: LocalAccount,
) -> None:
    history = eventful(chain, requester, provider, verifier, stranger)
    events = market_events(devnet, chain.block_number())
    start = block_of(events, "VerifierMissed", history.revealed)
    pruned_node.keep_from = chain.block_number()
    client = ChainClient.connect(pruned_node.url, protocol_abis())
    try:
        report = Auditor(connect_protocol(client, devnet.protocol.deployment), from_block=start).run()
    finally:
        client.close()
    assert pruned_node.refused > 0
    assert report.clean, [str(item) for item in report.discrepancies]
    # A verifier's slash is a share of a stake set before the start; a reward, of rewardBps before the
    # range changed it; the rest is checked.
    stake, params = "the stake a verifier's slash is a share of", "the network parameters its penalty depends on"
    assert report.skipped == [
        f"job {job_id}: {what} is unknown (the node keeps no state before block {start}): its settlement "
        "checks were skipped"
        for job_id, what in ((history.revealed, stake), (history.unrevealed, params),
                             (history.overturned, stake), (history.unvoted, stake))
    ]
    tallies = {tally.name: tally.count for tally in report.checks}
    assert tallies["settlement split"] == len(report.jobs) - 4 > 0
