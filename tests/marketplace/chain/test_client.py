"""The chain client: decoded reverts, refused transactions, unreachable nodes, event scanning."""

from __future__ import annotations

import pytest

from marketplace.chain.client import ChainClient
from marketplace.chain.deployment import WEI, protocol_abis
from marketplace.chain.devnet import Devnet, dev_account, free_port
from marketplace.chain.revert import ErrorDecoder
from marketplace.errors import ChainError, ChainUnreachableError, ContractError, TransactionError
from marketplace.protocol import Role
from tests.conftest import Chain
from tests.support.chain_outage import chain_down_until_retried


def test_unreachable_node_is_a_chain_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ChainError, match="cannot reach the chain"):
        ChainClient.connect(url, protocol_abis(), timeout=2)


def test_a_daemon_waits_for_a_chain_that_comes_back_instead_of_exiting(devnet: Devnet) -> None:
    # Found by scripts/chaos.py: a verifier restarted while anvil restarted exited with "cannot reach the chain".
    with chain_down_until_retried(devnet) as (proxy, handler):
        with pytest.raises(ChainUnreachableError):  # a one-shot command reports it at once
            ChainClient.connect(proxy.url, protocol_abis(), timeout=2)
        assert handler.retries == 0
        client = ChainClient.connect(proxy.url, protocol_abis(), timeout=2, wait_s=30)
        assert client.chain_id == devnet.protocol.deployment.chain_id
        assert handler.retries == 1
        client.close()


def test_revert_names_error_and_arguments(chain: Chain, stranger) -> None:
    with pytest.raises(ContractError) as caught:
        chain.market.add_stake(stranger, Role.VERIFIER, WEI)
    error = caught.value
    assert error.name == "NotRegistered"
    assert error.args_by_name == {"account": stranger.address, "role": Role.VERIFIER}
    assert error.raw == f"NotRegistered(account={stranger.address}, role=1) in addStake"
    assert str(error) == f"{stranger.address} is not registered as a verifier: register (with the minimum stake) " \
                         f"first ({error.raw})"


def test_transaction_reverting_after_mining_is_decoded(chain: Chain, stranger) -> None:
    # A fixed gas limit skips the estimate, so the revert happens on-chain; the client replays it.
    call = chain.market.contract.functions.withdraw()
    with pytest.raises(ContractError) as caught:
        chain.client.transact(stranger, call, gas=100_000)
    assert (caught.value.name, caught.value.values) == ("NothingToWithdraw", (stranger.address,))
    assert any("tx 0x" in note for note in caught.value.__notes__)


def test_node_refusal_is_a_transaction_error(chain: Chain, stranger) -> None:
    call = chain.market.contract.functions.withdraw()
    with pytest.raises(TransactionError, match="the node refused"):
        chain.client.transact(stranger, call, gas=10)  # below intrinsic gas


def test_decoder_handles_string_panic_and_unknown_errors() -> None:
    decoder = ErrorDecoder(protocol_abis())
    message = "08c379a0" + (32).to_bytes(32, "big").hex() + (2).to_bytes(32, "big").hex() + b"no".hex().ljust(64, "0")
    assert decoder.decode("0x" + message).args_by_name == {"message": "no"}
    panic = decoder.decode("0x4e487b71" + (0x11).to_bytes(32, "big").hex())
    assert (panic.name, panic.values) == ("Panic", (0x11,))
    assert decoder.decode("0xdeadbeef").name == "UnknownError"


def test_events_are_scanned_in_chunks_in_order(chain: Chain, requester) -> None:
    start = chain.block_number()
    ids = [chain.post(requester) for _ in range(5)]
    events = [e for e in chain.client.events(chain.market.contract, start, chunk=2) if e["event"] == "JobPosted"]
    assert [e["args"]["jobId"] for e in events] == ids


def test_dev_accounts_are_anvils(chain: Chain) -> None:
    assert dev_account(0).address == chain.client.w3.eth.accounts[0]
