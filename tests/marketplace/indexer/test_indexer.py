"""The indexer against a real anvil: projections match the contracts, reorgs rewind, restarts resume."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from sqlalchemy import Engine, func, select
from sqlmodel import Session, SQLModel, create_engine

from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import Devnet, revert, snapshot
from marketplace.indexer import Indexer, create_db
from marketplace.indexer.models import AccountRow, EventRow, JobRow, LedgerRow, StakeRow
from tests.conftest import Chain
from tests.support.history import settle_history

# PostgreSQL too when a test database is given (its tables are dropped first), e.g.
# WEBI_TEST_DATABASE_URL=postgresql+psycopg://webi:PASSWORD@127.0.0.1/webi_test with `pip install psycopg[binary]`.
DATABASES = ["sqlite", *(["postgresql"] if os.environ.get("WEBI_TEST_DATABASE_URL") else [])]


@pytest.fixture(params=DATABASES)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "index.db")
    url = os.environ["WEBI_TEST_DATABASE_URL"]
    engine = create_engine(url)
    SQLModel.metadata.drop_all(engine)
    engine.dispose()
    return url


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
        states = {row.job_id: row.state for row in session.exec(select(JobRow)).scalars()}
        assert states[done] == "finalized" and states[cancelled] == "cancelled" and states[open_job] == "open"
        stake = session.get(StakeRow, (provider.address, "provider"))
        on_chain = chain.market.provider_stake(provider.address)
        assert stake is not None and int(stake.stake) == on_chain.stake and int(stake.locked) == on_chain.locked
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
