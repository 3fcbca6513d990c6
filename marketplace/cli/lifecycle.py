"""``webi devnet lifecycle``: every path of the job state machine on a devnet, in seconds.

Five jobs walk the paths: an audited job that passes and is paid after its challenge window, a
cheating provider failed and slashed, a wrong verdict that the provider challenges and a panel
overturns, a verifier that misses its deadline and is replaced, and a claim that expires and is
reclaimed. No models run: outputs are placeholders and verdicts are given directly (``webi demo``
runs the real daemons). Four verifiers are staked and synced into the draw (weights change only in
a sync phase, the first blocks of each epoch), and each job's verifier is drawn by stake, so which of
them audits what changes from run to run; the outcomes do not. A draw whose seed block has a sync
phase after it re-arms, and is called again once its new seed block exists.

It shows the contract's rules and its ledger, and works against any anvil or hardhat chain with
the dev accounts (``--rpc-url``): it moves the chain's clock past each window (``evm_increaseTime``).
At the end every account withdraws, and the market must hold exactly the stakes plus what was
burned: the ledger, rebuilt from events alone, accounts for every other wei.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from eth_account.signers.local import LocalAccount
from rich.progress import Progress
from rich.table import Table

from marketplace.chain.client import ChainClient
from marketplace.chain.deployment import WEI, Protocol, protocol_abis
from marketplace.chain.devnet import Anvil, deploy_devnet, deploy_funded, dev_account, increase_time, mine
from marketplace.chain.market import JobMarket
from marketplace.cli.context import CliContext
from marketplace.errors import WebiError
from marketplace.protocol import (
    EPOCH_BLOCKS,
    SYNC_BLOCKS,
    CreditKind,
    JobRequest,
    JobState,
    Role,
    Verdict,
    audit_secret,
    next_sync_block,
    secret_hash,
)

OUTPUT_CID = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
SPEC_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
NUM_TASKS = 64
SAMPLE_TASKS = 4
DRAW_TRIES = 4  # a draw re-arms at most twice: its seed block at an epoch's end, then a sync phase passed


@dataclass(frozen=True)
class Cast:
    """The demo's accounts: anvil dev keys, public, devnet only."""

    requester: LocalAccount
    honest: LocalAccount
    cheater: LocalAccount
    verifiers: tuple[LocalAccount, ...]

    @classmethod
    def default(cls) -> Cast:
        return cls(dev_account(1), dev_account(2), dev_account(3), tuple(dev_account(i) for i in range(4, 8)))

    @property
    def everyone(self) -> list[LocalAccount]:
        return [self.requester, self.honest, self.cheater, *self.verifiers]

    def named(self) -> dict[str, str]:
        names = {str(self.requester.address): "requester", str(self.honest.address): "provider (honest)",
                 str(self.cheater.address): "provider (cheater)"}
        return names | {str(v.address): f"verifier {'ABCD'[i]}" for i, v in enumerate(self.verifiers)}


def run_lifecycle(cli: CliContext, run_dir: Path | None) -> None:
    """``webi devnet lifecycle`` (the command is in ``cli/devnet_tools.py``, so that the CLI starts without
    web3): on the chain at --rpc-url when given, else on an anvil of its own, with logs under ``run_dir``."""
    folder = run_dir or Path(tempfile.mkdtemp(prefix="webi-lifecycle-"))
    folder.mkdir(parents=True, exist_ok=True)
    cli.console.print(f"run directory: {folder}")
    cast = Cast.default()
    if cli.rpc_url:
        client = ChainClient.connect(cli.rpc_url, protocol_abis())
        cli.console.print(f"using the chain at {cli.rpc_url} (chain {client.chain_id}) with anvil's dev accounts")
        protocol = deploy_funded(client, fund_accounts=len(cast.everyone), fund_amount=10_000 * WEI)
        _Walk(cli, client, protocol, cast).run()
        return
    with Anvil(log_path=folder / "anvil.log") as anvil:
        cli.console.print(f"devnet: anvil at {anvil.rpc_url}, log {folder / 'anvil.log'}")
        net = deploy_devnet(anvil)
        _Walk(cli, net.client, net.protocol, cast).run()


@dataclass
class _Walk:
    """One run of the paths: the actors' calls, in the order a live network would make them."""

    cli: CliContext
    client: ChainClient
    protocol: Protocol
    cast: Cast
    # Each verifier's current audit-secret index: it reveals that one at its next verdict.
    secret_index: dict[str, int] = field(default_factory=dict)

    @property
    def market(self) -> JobMarket:
        return self.protocol.market

    def run(self) -> None:
        market, token, cast = self.market, self.protocol.token, self.cast
        start_block = self.client.w3.eth.block_number
        before = {str(a.address): token.balance_of(a.address) for a in cast.everyone}
        paths: list[tuple[str, Callable[[], str]]] = [
            ("audited job", self.audited_pass), ("cheating provider", self.caught_cheating),
            ("challenged verdict", self.overturned_by_panel), ("missed deadline", self.verifier_no_show),
            ("expired claim", self.expired_claim)]
        outcomes: list[tuple[str, str]] = []
        with Progress(console=self.cli.console, transient=True) as progress:
            task = progress.add_task("setting up stakes", total=len(paths) + 2)
            for account in cast.everyone:
                token.approve(account, market.address, 2**256 - 1)
            for provider in (cast.honest, cast.cheater):
                market.register(provider, Role.PROVIDER, 1_000 * WEI, "")
            for verifier in cast.verifiers:
                self.clear_of_a_sync_start()
                market.register(verifier, Role.VERIFIER, 1_000 * WEI, "")
                self.secret_index[verifier.address] = 0
                self.clear_of_a_sync_start()
                market.commit_secret(verifier, secret_hash(self.secret(verifier, 0)))
            self.sync(cast.verifiers)
            progress.advance(task)
            for description, action in paths:
                progress.update(task, description=description)
                outcomes.append((description, action()))
                progress.advance(task)
            for account in cast.everyone:
                if market.credits(account.address):
                    market.withdraw(account)
            if market.protocol_fees():
                market.withdraw_protocol_fees(cast.requester)
            progress.advance(task)
        for description, outcome in outcomes:
            self.cli.console.print(f"[bold]{description}[/bold]: {outcome}")
        _ledger(self.cli, self.client, self.protocol, cast, start_block, before)

    # ───────────────────────────────────────────── the actors' calls

    def secret(self, verifier: LocalAccount, index: int) -> bytes:
        return audit_secret(bytes(verifier.key), self.client.chain_id, self.market.address, index)

    def verifier(self, address: str) -> LocalAccount:
        return next(v for v in self.cast.verifiers if v.address == address)

    def post(self, price: int) -> int:
        claim_by = self.client.timestamp() + 86_400
        request = JobRequest(SPEC_CID, NUM_TASKS, price * WEI, claim_by, 600, SAMPLE_TASKS)
        return int(self.market.post_job(self.cast.requester, request))

    def block_number(self) -> int:
        return int(self.client.w3.eth.block_number)

    def sync(self, verifiers: tuple[LocalAccount, ...]) -> None:
        """Puts the verifiers' stakes and secrets into the draw: weights change only in a sync phase.

        ``syncVerifier`` is estimated on the latest block and mined in the next: both must be in
        the sync phase, so this mines to the next one when fewer than two of its blocks are left.
        """
        for verifier in verifiers:
            latest = self.block_number()
            if latest % EPOCH_BLOCKS > SYNC_BLOCKS - 2:
                mine(self.client, next_sync_block(latest + 1) - latest)
            self.market.sync_verifier(self.cast.requester, verifier.address)

    def clear_of_a_sync_start(self) -> None:
        """Mines a block when the next one starts a sync phase, before a call that changes a verifier's
        stake or secret: such a call is estimated on the latest block, where it leaves the draw alone,
        but would be mined in the sync phase, where it updates the draw and needs more gas."""
        if self.block_number() % EPOCH_BLOCKS == EPOCH_BLOCKS - 1:
            mine(self.client, 1)

    def past(self, seed_block: int) -> None:
        """Mines until the seed block and one more exist: calls are estimated on the latest block."""
        latest = self.block_number()
        if latest <= seed_block:
            mine(self.client, seed_block - latest + 1)

    def submitted(self, provider: LocalAccount, price: int, root: bytes) -> int:
        """Posted, claimed by ``provider`` and submitted."""
        job_id = self.post(price)
        self.market.claim_job(provider, job_id)
        self.market.submit_result(provider, job_id, OUTPUT_CID, root)
        return job_id

    def draw(self, job_id: int, caller: LocalAccount) -> LocalAccount:
        """``lockSeed`` (anyone may; the provider wants to be paid): the verifier drawn by stake.

        The seed block may lie a few blocks ahead (the end of a sync phase), and a draw whose seed
        block has a sync phase after it re-arms (``SeedRearmed``) instead: mine past the new one and
        call again.
        """
        for _ in range(DRAW_TRIES):
            self.past(self.market.get_job(job_id).seed_block)
            self.market.lock_seed(caller, job_id)
            audit = self.market.audit_of(job_id)
            if audit.drawn:
                return self.verifier(audit.verifier)
        raise WebiError(f"job {job_id}: no verifier drawn after {DRAW_TRIES} calls to lockSeed")

    def draw_panel(self, job_id: int, caller: LocalAccount) -> None:
        """``drawPanel`` once its seed block exists, again after a re-arm, as ``draw`` does."""
        for _ in range(DRAW_TRIES):
            self.past(self.market.panel_of(job_id).seed_block)
            self.market.draw_panel(caller, job_id)
            if self.market.panel_of(job_id).size or self.market.get_job(job_id).state != JobState.CHALLENGED:
                return
        raise WebiError(f"job {job_id}: no panel drawn after {DRAW_TRIES} calls to drawPanel")

    def verdict(self, job_id: int, verdict: Verdict) -> tuple[LocalAccount, list[int]]:
        """The drawn verifier reveals its secret with its verdict and commits its next one."""
        verifier = self.verifier(self.market.audit_of(job_id).verifier)
        index = self.secret_index[verifier.address]
        self.market.submit_verdict(verifier, job_id, verdict, OUTPUT_CID, self.secret(verifier, index),
                                   secret_hash(self.secret(verifier, index + 1)))
        self.secret_index[verifier.address] = index + 1
        return verifier, self.market.sampled_tasks(job_id)

    def after_challenge_window(self, job_id: int) -> JobState:
        """Moves the clock past the challenge window, and anyone settles the job."""
        increase_time(self.client, self.market.terms_of(job_id).challenge_window + 1)
        self.market.finalize(self.cast.requester, job_id)
        return self.market.get_job(job_id).state

    def name(self, account: LocalAccount) -> str:
        return self.cast.named()[account.address]

    # ───────────────────────────────────────────── the paths

    def audited_pass(self) -> str:
        job_id = self.submitted(self.cast.honest, 100, b"\x01" * 32)
        drawn = self.draw(job_id, self.cast.honest)
        _, sampled = self.verdict(job_id, Verdict.PASS)
        state = self.after_challenge_window(job_id)
        return (f"job {job_id}: {self.name(drawn)} drawn by stake, re-ran tasks {sampled}, passed; "
                f"nobody challenged in the window → {state.name}, provider paid")

    def caught_cheating(self) -> str:
        job_id = self.submitted(self.cast.cheater, 80, b"\xff" * 32)
        drawn = self.draw(job_id, self.cast.requester)
        self.verdict(job_id, Verdict.FAIL)
        state = self.after_challenge_window(job_id)
        return (f"job {job_id}: {self.name(drawn)} failed the cheater's outputs → {state.name}; price refunded, "
                "collateral slashed (10 % to the verifier, the rest burned)")

    def overturned_by_panel(self) -> str:
        market, honest = self.market, self.cast.honest
        job_id = self.submitted(honest, 100, b"\x03" * 32)
        wrong = self.draw(job_id, honest)
        self.verdict(job_id, Verdict.FAIL)  # a wrong verdict on honest work
        market.challenge(honest, job_id)  # the harmed side challenges, with a bond of 3 audit fees
        self.draw_panel(job_id, self.cast.requester)
        panel = market.panel_of(job_id)
        salt = b"\x5a" * 32
        members = list(dict.fromkeys(panel.members))  # seats are drawn with replacement: one vote a member
        for member in members:
            market.commit_vote(self.verifier(member), job_id, Verdict.PASS, salt)
        for member in members:
            market.reveal_vote(self.verifier(member), job_id, Verdict.PASS, salt)
        self.clear_of_a_sync_start()  # it slashes the wrong verifier
        market.resolve_challenge(self.cast.requester, job_id)
        state = market.get_job(job_id).state
        return (f"job {job_id}: {self.name(wrong)} failed honest work, the provider challenged, a panel of "
                f"{len(panel.members)} voted pass → {state.name}; {self.name(wrong)} slashed half its stake")

    def verifier_no_show(self) -> str:
        market, honest = self.market, self.cast.honest
        job_id = self.submitted(honest, 100, b"\x04" * 32)
        absent = self.draw(job_id, honest)
        increase_time(self.client, market.terms_of(job_id).audit_window + 1)
        self.clear_of_a_sync_start()
        market.redraw_verifier(honest, job_id)  # the no-show loses 1 % of its stake
        drawn = self.draw(job_id, honest)
        self.verdict(job_id, Verdict.PASS)
        state = self.after_challenge_window(job_id)
        return (f"job {job_id}: {self.name(absent)} let its deadline pass and was slashed 1 %; "
                f"{self.name(drawn)} drawn next, passed → {state.name}")

    def expired_claim(self) -> str:
        market, requester = self.market, self.cast.requester
        job_id = self.post(50)
        market.claim_job(self.cast.cheater, job_id)
        increase_time(self.client, 601)
        market.reclaim_expired(requester, job_id)
        market.cancel_job(requester, job_id)
        assert market.get_job(job_id).state is JobState.CANCELLED
        return (f"job {job_id}: claim expired, collateral slashed (10 % to whoever reclaimed, the rest burned), "
                "job cancelled → CANCELLED")


def _ledger(cli: CliContext, client: ChainClient, protocol: Protocol, cast: Cast, start_block: int,
            before: dict[str, int]) -> None:
    """Prints the ledger rebuilt from events and checks it against token balances."""
    market = protocol.market
    names = cast.named() | {market.treasury(): "treasury (protocol fees)"}
    totals: dict[tuple[str, CreditKind], int] = {}
    slashed: dict[str, int] = {}
    burned = 0
    for event in client.events(market.contract, start_block):
        args = event["args"]
        if event["event"] == "Credited":
            key = (args["account"], CreditKind(args["kind"]))
            totals[key] = totals.get(key, 0) + args["amount"]
        elif event["event"] == "Slashed":
            slashed[args["account"]] = slashed.get(args["account"], 0) + args["fromStake"] + args["fromUnbonding"]
        elif event["event"] == "Burned":
            burned += args["amount"]
    table = Table(title="ledger (from Credited, Slashed and Burned events)")
    for column in ("account", "kind", "WEBI"):
        table.add_column(column, justify="right" if column == "WEBI" else "left")
    for (account, kind), amount in sorted(totals.items(), key=lambda item: (names.get(item[0][0], ""), item[0][1])):
        table.add_row(names.get(account, account), kind.name.lower().replace("_", " "), f"{amount / WEI:,.4f}")
    for account, amount in sorted(slashed.items(), key=lambda item: names.get(item[0], item[0])):
        table.add_row(names.get(account, account), "[red]slashed[/red]", f"{-amount / WEI:,.4f}")
    table.add_row("nobody", "burned", f"{burned / WEI:,.4f}")
    cli.console.print(table)
    balances = Table(title="wallets after withdrawing (net = wallet + stake - before)")
    for column in ("account", "wallet", "staked", "net"):
        balances.add_column(column, justify="left" if column == "account" else "right")
    stakes = 0
    for address, start in before.items():
        after = protocol.token.balance_of(address)
        provider, verifier = market.provider_stake(address), market.verifier_stake(address)
        staked = provider.stake + provider.unbonding + verifier.stake + verifier.unbonding
        stakes += staked
        balances.add_row(names[address], f"{after / WEI:,.2f}", f"{staked / WEI:,.2f}",
                         f"{(after + staked - start) / WEI:+,.4f}")
    cli.console.print(balances)
    held = protocol.token.balance_of(market.address)
    if burned != market.burned() or held != stakes + burned:
        raise WebiError(f"the market holds {held} wei but owes {stakes} wei of stakes and burned {market.burned()} "
                        f"(events say {burned}): the books do not balance")
    cli.console.print(f"[green]books balance:[/green] the market holds exactly the {stakes / WEI:,.2f} WEBI staked "
                      f"and the {burned / WEI:,.2f} WEBI burned; every other wei was paid out as the ledger says")
