"""``webi job post`` checks the job as providers and the contract will, before anything is uploaded or spent:
each bad input exits with code 2 and one line that says why, and the store, the wallet's WEBI and its nonce
are as they were. On a real devnet and store node, with the tests' tiny real models."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from web3.types import RPCEndpoint

from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import Devnet, dev_account
from marketplace.protocol import Role
from marketplace.storage.local import LocalStore
from tests.conftest import Chain
from tests.marketplace.cli.runner import Cli
from tests.support.jobs import TEXTS, StoreNode


@pytest.fixture
def cli(devnet: Devnet, deployments: Path, tmp_path: Path, store_node: StoreNode, requester: LocalAccount) -> Cli:
    runner = Cli(devnet, tmp_path / "home", deployments, store_node.url)
    runner.import_wallet("alice", requester)
    return runner


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    path = tmp_path / "inputs.jsonl"
    path.write_text("".join(json.dumps({"text": text}) + "\n" for text in TEXTS))
    return path


@dataclass(frozen=True)
class Before:
    """What a refused post must leave as it was."""

    next_job_id: int
    balance: int
    nonce: int
    stored: frozenset[Path]


def before(chain: Chain, store_node: StoreNode, address: str) -> Before:
    stored = frozenset(path for path in store_node.store.root.rglob("*") if path.is_file())
    return Before(chain.market.next_job_id(), chain.token.balance_of(address),
                  chain.market.client.w3.eth.get_transaction_count(to_checksum_address(address)), stored)


def post(cli: Cli, model: Path | str, inputs: Path, price: str, *extra: str, task: str = "embed",
         wallet: str = "alice", code: int = 2) -> str:
    return cli("job", "post", "--task", task, "--model", str(model), "--inputs", str(inputs), "--price", price,
               *extra, "--wallet", wallet, *cli.password, code=code)


def refused(output: str, *needles: str) -> None:
    assert "Traceback" not in output and "posted job" not in output and "uploading" not in output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert errors, output
    for needle in needles:
        assert any(needle in line for line in errors), output


def copied(source: Path, target: Path, **config: object) -> Path:
    shutil.copytree(source, target)
    if config:
        path = target / "config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **config}))
    return target


def test_bundles_no_provider_runs_are_refused_before_any_upload(
    chain: Chain, cli: Cli, inputs: Path, bundles: dict[str, Path], store_node: StoreNode, tmp_path: Path,
    requester: LocalAccount,
) -> None:
    pickled = copied(bundles["embed"], tmp_path / "pickled")
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")
    remote = copied(bundles["embed"], tmp_path / "remote", auto_map={"AutoModel": "evil.Model"})
    code = copied(bundles["embed"], tmp_path / "code")
    (code / "modeling_evil.py").write_text("import os\n")
    file_cid = store_node.store.add_bytes(b"a file, not a folder").cid
    absent = LocalStore(tmp_path / "elsewhere").add_bytes(b"never in the node's store").cid
    cases: list[tuple[Path | str, str, str]] = [
        (pickled, "embed", "pytorch_model.bin is a pickle checkpoint"),
        (remote, "embed", "config.json asks for remote code (auto_map)"),
        (code, "embed", "modeling_evil.py is not a safetensors, JSON, tokenizer or text file"),
        (bundles["embed"], "generate", "is a bert model, which cannot generate"),
        (str(file_cid), "embed", f"CID {file_cid} is a file, not a model folder"),
        (str(absent), "embed", f"--model {absent}: the store does not have it"),
    ]
    start = before(chain, store_node, requester.address)
    for model, task, message in cases:
        refused(post(cli, model, inputs, "1", task=task), message)
    assert before(chain, store_node, requester.address) == start


def test_bounds_the_chain_would_refuse_each_exit_2_with_one_line(
    chain: Chain, cli: Cli, inputs: Path, bundles: dict[str, Path], store_node: StoreNode, requester: LocalAccount,
) -> None:
    model = bundles["embed"]
    start = before(chain, store_node, requester.address)
    refused(post(cli, model, inputs, "1", "--max-new-tokens", "0"),
            "parameters.max_new_tokens", "0 is out of bounds: 1 to 1024")
    refused(post(cli, model, inputs, "1", "--max-new-tokens", "1025"), "1 to 1024")
    refused(post(cli, model, inputs, "1", "--sample-tasks", "0"), "--sample-tasks 0: the audit re-executes 1 to 64")
    refused(post(cli, model, inputs, "1", "--sample-tasks", "65"), "--sample-tasks 65")
    refused(post(cli, model, inputs, "1", "--exec-window", "59"), "--exec-window 59: the contract takes 60 to 2592000")
    refused(post(cli, model, inputs, "1", "--exec-window", str(30 * 86_400 + 1)), "--exec-window 2592001")
    refused(post(cli, model, inputs, "1", "--claim-window", "10"), "--claim-window 10: at least 60 seconds")
    # Over what a uint96 holds: a line, not web3's MismatchedABI traceback.
    huge = post(cli, model, inputs, "100000000000")
    refused(huge, "over the largest price the contract can hold", "above the cap")
    assert "MismatchedABI" not in huge
    # Several problems at once: each on its own line.
    several = post(cli, model, inputs, "1", "--sample-tasks", "0", "--exec-window", "59")
    assert len([line for line in several.splitlines() if line.startswith("error:")]) == 2
    assert before(chain, store_node, requester.address) == start


def fresh_wallet(chain: Chain, cli: Cli, name: str, webi: int, ether: int) -> LocalAccount:
    """A new account holding ``webi`` wei of WEBI (from dev account 4) and ``ether`` wei of ETH."""
    account: LocalAccount = Account.from_key(bytes([len(name)] * 31 + [7]))
    if webi:
        chain.token.transfer(dev_account(4), account.address, webi)
    chain.market.client.w3.provider.make_request(RPCEndpoint("anvil_setBalance"), [account.address, hex(ether)])
    cli.import_wallet(name, account)
    return account


def test_a_wallet_short_of_webi_or_of_eth_is_refused_before_any_upload(
    chain: Chain, cli: Cli, inputs: Path, bundles: dict[str, Path], store_node: StoreNode,
) -> None:
    poor = fresh_wallet(chain, cli, "poor", WEI // 2, 10**18)
    dry = fresh_wallet(chain, cli, "dry", 10 * WEI, 0)
    for account, wallet, needle in [
        (poor, "poor", f"the job escrows 2 WEBI (the price plus the audit fee) and {poor.address} holds 0.5 WEBI"),
        (dry, "dry", f"{dry.address} has 0 ETH, and posting needs about"),
    ]:
        start = before(chain, store_node, account.address)
        refused(post(cli, bundles["embed"], inputs, "1", wallet=wallet), needle)
        assert before(chain, store_node, account.address) == start


def register_with(chain: Chain, store_node: StoreNode, account: LocalAccount, document: dict[str, object]) -> None:
    cid = store_node.store.add_bytes(json.dumps({"kind": "webi-provider", "version": 1, **document}).encode()).cid
    chain.approve(account)
    chain.market.register(account, Role.PROVIDER, 1_000 * WEI, str(cid))


def test_a_price_under_every_providers_floor_is_refused_unless_the_check_is_skipped(
    chain: Chain, cli: Cli, inputs: Path, bundles: dict[str, Path], store_node: StoreNode, requester: LocalAccount,
) -> None:
    alone = post(cli, bundles["embed"], inputs, "1", code=0)  # nobody registered yet: the job can wait
    assert "warning: no provider is registered yet" in alone and "posted job" in alone
    register_with(chain, store_node, dev_account(2), {"tasks": ["embed"], "price_floor": {"embed": "0.5"}})
    register_with(chain, store_node, dev_account(5), {"tasks": ["embed", "generate"], "price_floor": {"embed": "0.25"}})
    register_with(chain, store_node, dev_account(6), {"tasks": ["generate"]})
    start = before(chain, store_node, requester.address)
    cheap = post(cli, bundles["embed"], inputs, "1")  # 0.125 WEBI a task
    refused(cheap, "no registered provider would take this embed job (3 registered: 1 do not serve embed, "
                   "2 ask more per embed task): it pays 0.125 WEBI a task and the lowest floor is 0.25 WEBI: "
                   "a --price of at least 2 WEBI")
    assert before(chain, store_node, requester.address) == start
    skipped = post(cli, bundles["embed"], inputs, "1", "--no-provider-check", code=0)
    assert "warning: --no-provider-check" in skipped and "posted job" in skipped
    assert "posted job" in post(cli, bundles["embed"], inputs, "2", code=0)  # meets the lower floor
    # A provider that publishes neither key counts as one that might claim it.
    register_with(chain, store_node, dev_account(7), {})
    assert "posted job" in post(cli, bundles["embed"], inputs, "1", code=0)
