"""The indexer against a real anvil: projections match the contracts, reorgs rewind, restarts resume."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from marketplace.chain.artifacts import load_artifact
from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import Devnet, revert, snapshot
from marketplace.history import ChainState, SlashCause
from marketplace.indexer import Indexer, create_db
from marketplace.indexer.models import AccountRow, EventRow, JobRow, LedgerRow, StakeRow, VerifierRow
from marketplace.protocol import BPS, PANEL_SIZE, ZERO_ADDRESS, Role, Verdict
from tests.conftest import Chain
from tests.support.history import eventful_history, panel_accounts, settle_history

# `database` (tests/support/postgres.py): each test runs on a SQLite file and on a fresh PostgreSQL database.
MakeIndexer = Callable[..., tuple[Indexer, Engine]]


@pytest.fixture
def make_indexer(devnet: Devnet, database: str) -> Iterator[MakeIndexer]:
    """Indexers over the test's database (a second one on the same database is a restart)."""
    engines: list[Engine] = []

    def make(**options: int) -> tuple[Indexer, Engine]:
        engines.append(create_db(database))
        return Indexer(engines[-1], devnet.client, devnet.protocol.deployment, **options), engines[-1]

    yield make
    for engine in engines:
        engine.dispose()


def test_projections_agree_with_the_contracts(
    chain: Chain,
    devnet: Devnet,
    make_indexer: MakeIndexer,
    requester: LocalAccount,
    provider: LocalAccount,
    verifier: LocalAccount,
) -> None:
    history = settle_history(chain, requester, provider, verifier)
    done, cancelled, open_job = history.finalized, history.cancelled, history.open
    index, engine = make_indexer(chunk=7)
    progress = index.step()
    assert progress.block == chain.block_number()
    with Session(engine) as session:
        jobs = {row.job_id: row for row in session.exec(select(JobRow)).scalars()}
        assert {job_id: row.state for job_id, row in jobs.items()} == {
            done: "finalized", cancelled: "cancelled", open_job: "open"}
        assert (jobs[done].verifier, jobs[done].verdict, jobs[open_job].verdict) == (verifier.address, "pass", None)
        assert jobs[done].sample_seed == "0x" + chain.market.audit_of(done).secret.hex()
        assert int(jobs[open_job].audit_fee) == chain.market.terms_of(open_job).audit_fee
        stake = session.get(StakeRow, (provider.address, "provider"))
        on_chain = chain.market.provider_stake(provider.address)
        assert stake is not None and int(stake.stake) == on_chain.stake and int(stake.locked) == on_chain.locked
        audits = session.get(StakeRow, (verifier.address, "verifier"))
        assert audits is not None and audits.duties == 0 and int(audits.stake) == 1_000 * WEI
        assert audits.secret_hash == "0x" + chain.market.secret_of(verifier.address).hex()
        for account in (requester, provider, verifier, chain.owner):
            row = session.get(AccountRow, account.address)
            assert row is not None
            assert int(row.balance) == chain.token.balance_of(account.address)
            assert int(row.credits) == chain.market.credits(account.address)
        market_row = session.get(AccountRow, chain.market.address)
        assert market_row is not None and int(market_row.balance) == chain.token.balance_of(chain.market.address)
        withdrawals = session.exec(select(LedgerRow).where(LedgerRow.kind == "withdrawn")).scalars().all()
        assert [(row.account, row.amount[0]) for row in withdrawals] == [(provider.address, "-")]
        posted = session.exec(select(EventRow).where(EventRow.job_id == open_job)).scalars().one()
        assert posted.name == "JobPosted" and json.loads(posted.args)["terms"]["price"] == str(7 * WEI)


def test_every_event_folds_to_the_contracts_view_and_a_restart_folds_the_same(
    chain: Chain,
    devnet: Devnet,
    make_indexer: MakeIndexer,
    requester: LocalAccount,
    provider: LocalAccount,
    verifier: LocalAccount,
    stranger: LocalAccount,
) -> None:
    history = eventful_history(chain, requester, provider, verifier, stranger)
    market = chain.market
    index, engine = make_indexer(chunk=5)
    index.step()
    with Session(engine) as session:
        stakes = list(session.exec(select(StakeRow)).scalars())
        jobs = {row.job_id: row for row in session.exec(select(JobRow)).scalars()}
    assert len(stakes) == 3 and len(jobs) == 9 + 3  # the group's two shards, and one re-posted
    group = history.group
    assert index.state.groups == {group.group_id: [group.finalized, group.cancelled, group.reposted]}
    for row in stakes:
        view = market.provider_stake(row.account) if row.role == "provider" else market.verifier_stake(row.account)
        assert (int(row.stake), int(row.locked), int(row.unbonding), row.duties) == (
            view.stake, view.locked, view.unbonding, view.duties), row
    slashed = {(row.account, row.role): int(row.slashed) for row in stakes}
    # The judge left unvoted the three seats it held: slashed 1 % three times over, out of unbonding
    # stake (it had asked to unstake all), each time of what the previous slash left; then it withdrew.
    leaver = panel_accounts()[0].address
    left, slashes, bps = 1_000 * WEI, 0, market.params().no_show_slash_bps
    for _ in range(PANEL_SIZE):
        slashes, left = slashes + left * bps // BPS, left - left * bps // BPS
    assert slashed[(leaver, "verifier")] == slashes == 29_701 * WEI // 1_000
    assert index.state.stakes[(leaver, Role.VERIFIER)].stake == 0
    assert slashed[(provider.address, "provider")] == 3 * 10 * WEI  # an expired claim and two failed audits
    for job_id, row in jobs.items():
        status, audit = market.get_job(job_id), market.audit_of(job_id)
        assert row.state == status.state.name.lower()
        assert (row.verifier or ZERO_ADDRESS, row.verdict or "none") == (audit.verifier, audit.verdict.name.lower())
        if row.challenger:
            panel = market.panel_of(job_id)
            assert (row.challenger, int(row.bond or 0)) == (panel.challenger, panel.bond)
            assert json.loads(row.challenge or "{}")["members"] == list(panel.members)
    assert sum(int(row.burned) for row in jobs.values()) == market.burned()
    audit = json.loads(jobs[history.revealed].audit)
    assert audit["draws"] == 2 and audit["missed"] == [verifier.address] and audit["verifier_verdict"] == "inconclusive"
    assert sorted(audit["revealed_tasks"]) == sorted(market.sample_of(market.audit_of(history.revealed).secret, 16, 4))
    assert json.loads(jobs[history.unrevealed].audit)["rearms"] == 1 and jobs[history.unrevealed].verdict == "fail"
    outcomes = {
        job_id: (challenge["outcome"], challenge["upheld"], len(challenge["members"]), len(challenge["votes"]))
        for job_id, challenge in ((i, json.loads(jobs[i].challenge or "{}")) for i in jobs if jobs[i].challenge)
    }
    assert outcomes == {  # seats, and the votes of the one member holding them
        history.dismissed: ("pass", True, 0, 0),
        history.overturned: ("pass", False, 3, 1),
        history.upheld: ("fail", True, 3, 1),
        history.unvoted: ("pass", True, 3, 0),
    }
    assert index.state.jobs[history.overturned].audit_verdict == Verdict.FAIL
    with Session(engine) as session:
        names = set(session.exec(select(EventRow.name)).scalars())
        weights = {row.account: int(row.weight) for row in stakes if row.role == "verifier"}
        records = {row.address: row for row in session.exec(select(VerifierRow)).scalars()}
    # Every event the market can emit is in this history (the deployment sets the terms and the treasury),
    # save a two-step transfer of ownership.
    market_events = {item["name"] for item in load_artifact("JobMarket").abi if item["type"] == "event"}
    assert market_events - names == {"OwnershipTransferStarted"}
    assert weights == {account: market.verifier_weight(account) for account in weights}
    assert sum(weights.values()) == market.total_verifier_weight()
    assert index.state.owner == market.contract.functions.owner().call()
    mine, theirs = records[verifier.address], records[panel_accounts()[0].address]
    assert (mine.draws, mine.audits, mine.missed, mine.reveal_demands) == (9, 7, 1, 3)
    assert (mine.challenged, mine.overturned, mine.upheld, json.loads(mine.verdicts)) == (
        4, 1, 3, {"fail": 2, "inconclusive": 1, "pass": 4})
    assert (theirs.panels, theirs.seats, theirs.votes, theirs.missed_votes) == (3, 3 * PANEL_SIZE, 2, PANEL_SIZE)
    causes = Counter(slash.cause for job in index.state.jobs.values() for slash in job.slashes)
    assert causes == {SlashCause.EXPIRED_CLAIM: 1, SlashCause.MISSED_VERDICT: 1, SlashCause.FAILED_AUDIT: 2,
                      SlashCause.OVERTURNED: 1, SlashCause.MISSED_VOTE: PANEL_SIZE}
    confidential = index.state.jobs[history.confidential]
    assert (jobs[history.confidential].state, confidential.released_claims) == ("finalized", 0)
    assert (jobs[history.given_back].state, index.state.jobs[history.given_back].released_claims) == ("open", 1)
    assert sorted(confidential.revealed_tasks or []) == sorted(  # sealed, on-chain
        market.sample_of(market.audit_of(history.confidential).secret, 16, 4))
    assert [(sender, to) for sender, to, _ in confidential.key_releases] == [
        (requester.address, provider.address), (provider.address, verifier.address)]
    with Session(engine) as session:
        released = [json.loads(row.args) for row in session.exec(select(EventRow).where(EventRow.name == "KeyReleased"))
                    .scalars()]
    # The wrapped keys stay on-chain: the row keeps their length (an age file of about 200 bytes).
    assert [("wrappedKey" in args, 150 < args["wrappedKeyLength"] < 1_024) for args in released] == [(False, True)] * 2
    restarted, _ = make_indexer()
    assert restarted.state == index.state  # the stored events fold to the same state as the chain's


def test_every_event_the_contracts_emit_has_a_fold_handler() -> None:
    """A new event in the ABI without a handler would be indexed but never folded: the books would drift."""
    market = {item["name"]: item for item in load_artifact("JobMarket").abi if item["type"] == "event"}
    for module in ("Disputes", "Requests"):
        events = {item["name"]: item for item in load_artifact(module).abi if item["type"] == "event"}
        # The modules run by DELEGATECALL: their logs come from the market's address and decode with its ABI.
        assert {name: market.get(name) for name in events} == events
    missing = sorted(name for name in market if not hasattr(ChainState, f"_on_market_{name}"))
    assert missing == []
    token = {item["name"] for item in load_artifact("WebiToken").abi if item["type"] == "event"}
    # Approvals and the EIP-712 domain move no value; Transfer does.
    assert {name for name in token if not hasattr(ChainState, f"_on_token_{name}")} == {
        "Approval", "EIP712DomainChanged"}


def test_step_is_idempotent_and_a_restart_resumes_from_the_cursor(
    chain: Chain, devnet: Devnet, make_indexer: MakeIndexer, requester: LocalAccount
) -> None:
    first = chain.post(requester)
    index, engine = make_indexer()
    index.step()
    before = index.step().events
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(EventRow)).one()[0] == before
    second = chain.post(requester)
    restarted, engine = make_indexer()
    assert restarted.state.events == before and restarted.cursor == index.cursor
    restarted.step()
    with Session(engine) as session:
        assert {row.job_id for row in session.exec(select(JobRow)).scalars()} >= {first, second}
        assert session.exec(select(func.count()).select_from(EventRow)).one()[0] == restarted.state.events


def test_confirmations_hold_back_the_newest_blocks(
    chain: Chain, devnet: Devnet, make_indexer: MakeIndexer, requester: LocalAccount
) -> None:
    index, _ = make_indexer(confirmations=3)
    job = chain.post(requester)
    assert job not in index.state.jobs and index.step().block == chain.block_number() - 3
    chain.mine(3)
    index.step()
    assert job in index.state.jobs


def test_a_reorg_rewinds_to_the_common_ancestor(
    chain: Chain, devnet: Devnet, make_indexer: MakeIndexer, requester: LocalAccount, stranger: LocalAccount
) -> None:
    chain.approve(requester)
    index, engine = make_indexer()
    index.step()
    fork = snapshot(chain.client)
    orphan = chain.market.post_job(requester, chain.request(price=11 * WEI))
    chain.mine(2)
    index.step()
    assert index.state.jobs[orphan].price == 11 * WEI
    revert(chain.client, fork)
    chain.token.transfer(requester, stranger.address, 5 * WEI)
    replacement = chain.market.post_job(requester, chain.request(price=13 * WEI))
    chain.mine(4)
    progress = index.step()
    assert progress.reorgs == 1 and progress.block == chain.block_number()
    assert replacement == orphan and index.state.jobs[replacement].price == 13 * WEI
    with Session(engine) as session:
        row = session.get(JobRow, replacement)
        assert row is not None and row.price == str(13 * WEI)
        assert int(session.get(AccountRow, stranger.address).balance) == chain.token.balance_of(stranger.address)
        hashes = {row.tx_hash for row in session.exec(select(EventRow).where(EventRow.job_id == replacement)).scalars()}
        assert len(hashes) == 1


def test_an_older_deployment_file_finds_the_token_mint_by_its_logs(
    chain: Chain, devnet: Devnet, tmp_path: Path
) -> None:
    from dataclasses import replace

    recorded = devnet.protocol.deployment
    assert recorded.token_block is not None and recorded.token_block <= recorded.block
    engine = create_db(tmp_path / "old.db")
    try:
        index = Indexer(engine, devnet.client, replace(recorded, token_block=None))
        index.step()
        assert sum(index.state.balances.values()) == chain.token.total_supply()
        assert index.state.events > 0
    finally:
        engine.dispose()


def test_an_index_an_older_webi_wrote_is_refused_with_what_to_do(tmp_path: Path) -> None:
    import sqlite3

    from marketplace.errors import ConfigError

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as connection:  # the jobs table as it was when jobs had a sample rate
        connection.execute("CREATE TABLE jobs (job_id INTEGER PRIMARY KEY, state TEXT, sample_rate_bps INTEGER)")
    with pytest.raises(ConfigError, match=r"older WEBI \(table jobs lacks .*audit_fee.*\): delete it"):
        create_db(path)

    before = tmp_path / "before-weights.db"
    with sqlite3.connect(before) as connection:  # the stakes table before verifier weights were indexed
        connection.execute("CREATE TABLE stakes (account TEXT, role TEXT, stake TEXT, slashed TEXT)")
    with pytest.raises(ConfigError, match=r"table stakes lacks .*weight.*: delete it"):
        create_db(before)
    with sqlite3.connect(before) as connection:  # refused, not altered: nothing is lost
        assert [row[1] for row in connection.execute("PRAGMA table_info(stakes)")] == [
            "account", "role", "stake", "slashed"]
