"""Debian's headless Chromium under Playwright (no browser is downloaded), for the dashboard and web app tests,
and the test wallet the web app's tests inject (``wallet.js``)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# The flags keep Chromium off the network (this machine has none) and out of the sandbox (root in CI).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WALLET_JS = (Path(__file__).parent / "wallet.js").read_text()


def skip_without_chromium() -> None:
    """Skips the calling module where there is no Chromium, but never under CI, where it must be."""
    if CHROMIUM is None and os.environ.get("CI") != "true":
        pytest.skip("no chromium on this machine (./dev test installs Debian's where it can)", allow_module_level=True)


@pytest.fixture
def browser() -> Iterator[Browser]:
    assert CHROMIUM is not None, "CI must have chromium: ./dev installs Debian's package"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


def wallet_context(browser: Browser, *, rpc_url: str, account: str, chain_id: int, wallet_chain_id: int | None = None,
                   locked: bool = False, reject: tuple[str, ...] = (), **options: Any) -> BrowserContext:
    """A browser context whose pages all carry the test wallet for ``account`` (``wallet.js``)."""
    context = browser.new_context(**options)
    settings = {"rpcUrl": rpc_url, "account": account, "chainId": hex(wallet_chain_id or chain_id),
                "realChainId": hex(chain_id), "locked": locked, "reject": list(reject)}
    context.add_init_script(f"window.__webiWallet = {json.dumps(settings)};\n{WALLET_JS}")
    return context
