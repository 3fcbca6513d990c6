"""anvil writes old states under $HOME/.foundry/anvil/tmp and leaves them behind when stopped; each
Anvil runs with a HOME of its own and removes it on stop, so test runs do not fill the disk."""

from __future__ import annotations

from pathlib import Path

import requests

from marketplace.chain.devnet import Anvil


def test_anvil_keeps_its_states_in_a_home_of_its_own_and_removes_it(tmp_path: Path) -> None:
    with Anvil(pinned_clock=True) as anvil:
        home = anvil._home
        assert home is not None and home.is_dir() and home != Path.home()
        cache = home / ".foundry" / "anvil" / "tmp"
        for _ in range(20):  # anvil moves states to disk once enough blocks are in memory
            if cache.is_dir() and any(cache.iterdir()):
                break
            assert requests.post(anvil.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "anvil_mine",
                                       "params": ["0x100"]}, timeout=30).ok
        assert cache.is_dir() and any(cache.iterdir()), "anvil's state cache is in that HOME"
    assert not home.exists(), "the private HOME (and anvil's state cache in it) is gone"
    assert anvil._home is None
