"""A local anvil chain with WEBI deployed: for the demo, the CLI's ``webi devnet`` and the tests.

The accounts come from anvil's published development mnemonic. Those keys are public knowledge:
they are fine for a local devnet and tests, and must never hold anything of value.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import requests
from eth_account import Account
from eth_account.signers.local import LocalAccount

from marketplace.chain.artifacts import repo_root
from marketplace.chain.client import ChainClient
from marketplace.chain.deployment import DEFAULT_GOVERNANCE_DELAY, WEI, Protocol, deploy_protocol, protocol_abis
from marketplace.errors import DevnetError

logger = logging.getLogger(__name__)

# Anvil's published development mnemonic. Devnet and tests only: these keys are public.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_CHAIN_ID = 31337


def dev_account(index: int) -> LocalAccount:
    """Dev account ``index`` of anvil's mnemonic (index 0 deploys and holds the supply)."""
    Account.enable_unaudited_hdwallet_features()
    account: LocalAccount = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return account


def find_anvil() -> Path:
    """``$WEBI_ANVIL``, the checkout's npm-installed anvil, or anvil on PATH."""
    candidates = [os.environ.get("WEBI_ANVIL"), str(repo_root() / "node_modules" / ".bin" / "anvil"),
                  shutil.which("anvil")]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return Path(candidate)
    raise DevnetError("anvil not found: run `npm ci` in the checkout (it installs @foundry-rs/anvil), "
                      "or set WEBI_ANVIL")


def anvil_binary() -> Path:
    """The anvil program itself: npm's ``@foundry-rs/anvil`` runs it behind a Node.js wrapper, whose
    SIGKILL would leave anvil running, so the platform package's binary where the checkout has one."""
    if not os.environ.get("WEBI_ANVIL"):
        for binary in sorted((repo_root() / "node_modules" / "@foundry-rs").glob("anvil-*/bin/anvil")):
            return binary
    return find_anvil()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Anvil:
    """One anvil process on 127.0.0.1. ``detach`` keeps it running after this process exits.

    ``pinned_clock`` starts the chain at ``genesis_timestamp`` and gives every block the previous
    block's time + 1 s, whatever the wall clock says: the same transactions then give the same
    block hashes (and so the same audit seeds) on every run. Tests use it; a devnet for people
    follows the wall clock.
    """

    port: int = 0
    accounts: int = 10
    block_time: float | None = None
    pinned_clock: bool = False
    genesis_timestamp: int = 1_800_000_000
    log_path: Path | None = None
    detach: bool = False
    startup_timeout: float = 30.0
    executable: Path | None = None  # default: find_anvil()
    extra_args: tuple[str, ...] = ()  # e.g. ("--load-state", "state.json")
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    # anvil writes old states to $HOME/.foundry/anvil/tmp and leaves them there when it is stopped
    # (74 GB after a few dozen test runs here): each process gets a HOME of its own, removed with it.
    # A detached devnet keeps its states beside its log, for as long as it runs.
    _home: Path | None = field(default=None, init=False, repr=False)

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Anvil:
        if not self.port:
            self.port = free_port()
        cmd = [str(self.executable or find_anvil()), "--host", "127.0.0.1", "--port", str(self.port),
               "--chain-id", str(DEV_CHAIN_ID), "--mnemonic", DEV_MNEMONIC, "--accounts", str(self.accounts),
               "--balance", "1000000"]
        if self.block_time:
            cmd += ["--block-time", str(self.block_time)]
        if self.pinned_clock:
            cmd += ["--timestamp", str(self.genesis_timestamp)]
        cmd += self.extra_args
        if self.detach and self.log_path:
            self._home = self.log_path.parent / "anvil-home"
            self._home.mkdir(parents=True, exist_ok=True)
        elif not self.detach:
            self._home = Path(tempfile.mkdtemp(prefix="webi-anvil-"))
        env = {**os.environ, "HOME": str(self._home)} if self._home else None
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=self.detach, env=env)
        finally:
            if self.log_path:
                log.close()  # type: ignore[union-attr]
        self._wait_ready()
        if self.pinned_clock:
            requests.post(self.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "anvil_setBlockTimestampInterval",
                                              "params": [1]}, timeout=5).raise_for_status()
        logger.info("anvil %d listening on %s", self.process.pid, self.rpc_url)
        return self

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                where = f"; see {self.log_path}" if self.log_path else ""
                raise DevnetError(f"anvil exited with code {self.process.returncode} on port {self.port}{where}")
            try:
                reply = requests.post(self.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"},
                                      timeout=1)
                if reply.ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)  # polling a condition with a deadline, not synchronizing by sleep
        self.stop()
        raise DevnetError(f"anvil did not answer on {self.rpc_url} within {self.startup_timeout:.0f} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self._home is not None and not self.detach:
            shutil.rmtree(self._home, ignore_errors=True)
            self._home = None

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


@dataclass
class Devnet:
    """A running anvil with the protocol deployed and dev accounts funded with WEBI."""

    anvil: Anvil
    client: ChainClient
    protocol: Protocol

    @property
    def deployer(self) -> LocalAccount:
        return dev_account(0)


def deploy_funded(client: ChainClient, *, fund_accounts: int = 9, fund_amount: int = 1_000_000 * WEI) -> Protocol:
    """Deploys WEBI from dev account 0 and gives dev accounts 1..fund_accounts ``fund_amount`` each.

    The market's owner is a TimelockController in which dev account 0 proposes changes.

    Works on any chain where anvil's dev accounts hold gas money (anvil, hardhat).
    """
    deployer = dev_account(0)
    protocol = deploy_protocol(client, deployer, governance_delay=DEFAULT_GOVERNANCE_DELAY)
    for index in range(1, fund_accounts + 1):
        protocol.token.transfer(deployer, dev_account(index).address, fund_amount)
    return protocol


def deploy_devnet(anvil: Anvil, *, fund_accounts: int = 9, fund_amount: int = 1_000_000 * WEI) -> Devnet:
    """Deploys WEBI on a started anvil and funds dev accounts 1..fund_accounts (see deploy_funded)."""
    client = ChainClient.connect(anvil.rpc_url, protocol_abis(), poll_interval=0.01)
    return Devnet(anvil, client, deploy_funded(client, fund_accounts=fund_accounts, fund_amount=fund_amount))


def increase_time(client: ChainClient, seconds: int) -> None:
    """Moves a devnet's clock forward and mines a block at the new time (anvil and hardhat only).

    It sets the next block's timestamp rather than calling ``evm_increaseTime``, which anvil
    ignores on a pinned clock (``Anvil(pinned_clock=True)``).
    """
    target = client.timestamp() + seconds
    client.w3.provider.make_request("evm_setNextBlockTimestamp", [target])  # type: ignore[arg-type]
    client.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def mine(client: ChainClient, blocks: int = 1) -> None:
    """Mines ``blocks`` empty blocks on a devnet."""
    client.w3.provider.make_request("anvil_mine", [hex(blocks)])  # type: ignore[arg-type]




def snapshot(client: ChainClient) -> str:
    """Takes an anvil snapshot of the whole chain state; ``revert`` goes back to it."""
    return str(client.w3.provider.make_request("evm_snapshot", [])["result"])  # type: ignore[arg-type]


def revert(client: ChainClient, snapshot_id: str) -> None:
    """Returns the chain to ``snapshot_id`` (which anvil then forgets)."""
    reply = client.w3.provider.make_request("evm_revert", [snapshot_id])  # type: ignore[arg-type]
    if reply.get("result") is not True:
        raise DevnetError(f"could not revert to snapshot {snapshot_id}: {reply}")
