"""``webi devnet lifecycle``: every path of the job state machine on a devnet, in seconds.

Four jobs walk every path: an audited job that passes, an unaudited job settled after its window,
a cheating provider caught and slashed, and a claim that expires and is reclaimed. No models run:
outputs are placeholders and verdicts are given directly (``webi demo`` runs the real daemons).
It shows the contract's rules and its ledger, and works against any chain with anvil's dev
accounts (``--rpc-url``). At the end every account withdraws and the ledger, rebuilt
from `Credited` events alone, must account for every wei that moved.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from eth_account.signers.local import LocalAccount
from rich.progress import Progress
from rich.table import Table

from marketplace.chain.client import ChainClient
from marketplace.chain.deployment import WEI, Protocol, protocol_abis
from marketplace.chain.devnet import Anvil, deploy_devnet, deploy_funded, dev_account, increase_time, mine
from marketplace.cli.context import CliContext
from marketplace.errors import WebiError
from marketplace.protocol import CreditKind, JobRequest, JobState, Role

OUTPUT_CID = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
SPEC_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


@dataclass(frozen=True)
class Cast:
    """The demo's accounts: anvil dev keys, public, devnet only."""

    requester: LocalAccount
    honest: LocalAccount
    cheater: LocalAccount
    verifier: LocalAccount

    @classmethod
    def default(cls) -> Cast:
        return cls(dev_account(1), dev_account(2), dev_account(3), dev_account(4))

    def named(self) -> dict[str, str]:
        return {self.requester.address: "requester", self.honest.address: "provider (honest)",
                self.cheater.address: "provider (cheater)", self.verifier.address: "verifier"}


def lifecycle(
    ctx: typer.Context,
    run_dir: Annotated[Path | None, typer.Option(help="Where logs go (default: a new temporary folder).")] = None,
) -> None:
    """Walk every path of the job state machine on a devnet (no models) and print the ledger."""
    cli: CliContext = ctx.obj
    folder = run_dir or Path(tempfile.mkdtemp(prefix="webi-lifecycle-"))
    folder.mkdir(parents=True, exist_ok=True)
    cli.console.print(f"run directory: {folder}")
    if cli.rpc_url:
        client = ChainClient.connect(cli.rpc_url, protocol_abis())
        cli.console.print(f"using the chain at {cli.rpc_url} (chain {client.chain_id}) with anvil's dev accounts")
        _run(cli, client, deploy_funded(client, fund_accounts=4, fund_amount=10_000 * WEI), Cast.default())
        return
    with Anvil(log_path=folder / "anvil.log") as anvil:
        cli.console.print(f"devnet: anvil at {anvil.rpc_url}, log {folder / 'anvil.log'}")
        net = deploy_devnet(anvil)
        _run(cli, net.client, net.protocol, Cast.default())


def _run(cli: CliContext, client: ChainClient, protocol: Protocol, cast: Cast) -> None:
    market, token = protocol.market, protocol.token
    accounts = [cast.requester, cast.honest, cast.cheater, cast.verifier]
    start_block = client.w3.eth.block_number
    before: dict[str, int] = {str(a.address): token.balance_of(a.address) for a in accounts}
    audit_window = market.terms().audit_window
    outcomes: list[tuple[str, str]] = []

    with Progress(console=cli.console, transient=True) as progress:
        task = progress.add_task("setting up stakes", total=6)
        for account in accounts:
            token.approve(account, market.address, 2**256 - 1)
        for account, role in ((cast.honest, Role.PROVIDER), (cast.cheater, Role.PROVIDER),
                              (cast.verifier, Role.VERIFIER)):
            market.register(account, role, 1_000 * WEI, "")
        progress.advance(task)

        def post(price: int, rate: int) -> int:
            claim_by = client.timestamp() + 86_400
            return market.post_job(cast.requester, JobRequest(SPEC_CID, 64, price * WEI, claim_by, 600, rate, 4))

        def submitted(provider: LocalAccount, price: int, rate: int, root: bytes) -> int:
            """Posted, claimed by ``provider``, submitted, and its audit seed visible."""
            job_id = post(price, rate)
            market.claim_job(provider, job_id)
            market.submit_result(provider, job_id, OUTPUT_CID, root)
            mine(client, 2)
            return job_id

        def audited_pass() -> str:
            job_id = submitted(cast.honest, 100, 10_000, b"\x01" * 32)
            audit = market.audit_of(job_id)
            market.submit_verdict(cast.verifier, job_id, True, "evidence")
            return f"job {job_id}: audited by {audit.verifier[:10]}…, passed → {market.get_job(job_id).state.name}"

        def unaudited() -> str:
            job_id = submitted(cast.honest, 100, 500, b"\x02" * 32)
            if market.audit_of(job_id).audited:
                market.submit_verdict(cast.verifier, job_id, True, "evidence")
                return f"job {job_id}: sampled at 5 % and audited, passed → FINALIZED"
            increase_time(client, audit_window + 1)
            market.finalize(cast.requester, job_id)
            return f"job {job_id}: not sampled (5 % rate), finalized after the audit window → FINALIZED"

        def caught_cheating() -> str:
            job_id = submitted(cast.cheater, 200, 10_000, b"\xff" * 32)
            market.submit_verdict(cast.verifier, job_id, False, "evidence")
            state = market.get_job(job_id).state
            return f"job {job_id}: cheater's outputs failed the audit → {state.name}, collateral slashed"

        def expired_claim() -> str:
            job_id = post(50, 500)
            market.claim_job(cast.cheater, job_id)
            increase_time(client, 601)
            market.reclaim_expired(cast.requester, job_id)
            market.cancel_job(cast.requester, job_id)
            assert market.get_job(job_id).state is JobState.CANCELLED
            return f"job {job_id}: claim expired, collateral to the requester, job cancelled → CANCELLED"

        for description, action in (("audited job", audited_pass), ("unaudited job", unaudited),
                                    ("cheating provider", caught_cheating), ("expired claim", expired_claim)):
            progress.update(task, description=description)
            outcomes.append((description, action()))
            progress.advance(task)
        for account in accounts:
            if market.credits(account.address):
                market.withdraw(account)
        if market.protocol_fees():
            market.withdraw_protocol_fees(cast.requester)
        progress.advance(task)

    for description, outcome in outcomes:
        cli.console.print(f"[bold]{description}[/bold]: {outcome}")
    _ledger(cli, client, protocol, cast, start_block, before)


def _ledger(cli: CliContext, client: ChainClient, protocol: Protocol, cast: Cast, start_block: int,
            before: dict[str, int]) -> None:
    """Prints the ledger rebuilt from events and checks it against token balances."""
    names = cast.named() | {protocol.market.treasury(): "treasury (protocol fees)"}
    totals: dict[tuple[str, CreditKind], int] = {}
    for event in client.events(protocol.market.contract, start_block):
        if event["event"] == "Credited":
            key = (event["args"]["account"], CreditKind(event["args"]["kind"]))
            totals[key] = totals.get(key, 0) + event["args"]["amount"]
    table = Table(title="ledger (from Credited events)")
    for column in ("account", "kind", "WEBI"):
        table.add_column(column, justify="right" if column == "WEBI" else "left")
    for (account, kind), amount in sorted(totals.items(), key=lambda item: (names.get(item[0][0], ""), item[0][1])):
        table.add_row(names.get(account, account), kind.name.lower().replace("_", " "), f"{amount / WEI:,.4f}")
    cli.console.print(table)
    balances = Table(title="wallets after withdrawing (net = wallet + stake - before)")
    for column in ("account", "wallet", "staked", "net"):
        balances.add_column(column, justify="left" if column == "account" else "right")
    stakes = 0
    for address, start in before.items():
        after = protocol.token.balance_of(address)
        provider, verifier = protocol.market.provider_stake(address), protocol.market.verifier_stake(address)
        staked = provider.stake + provider.unbonding + verifier.stake + verifier.unbonding
        stakes += staked
        balances.add_row(names[address], f"{after / WEI:,.2f}", f"{staked / WEI:,.2f}",
                         f"{(after + staked - start) / WEI:+,.4f}")
    cli.console.print(balances)
    held = protocol.token.balance_of(protocol.market.address)
    if held != stakes:
        raise WebiError(f"the market holds {held} wei but owes {stakes} wei of stakes: the books do not balance")
    cli.console.print(f"[green]books balance:[/green] the market holds exactly the {stakes / WEI:,.0f} WEBI staked; "
                      "every other wei was paid out as the ledger says")
