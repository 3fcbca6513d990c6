"""A chain that comes back while a client waits for it: the RPC proxy, brought up by the client's first retry."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from marketplace.chain.devnet import Devnet, free_port
from marketplace.chaos.proxy import RpcProxy


class _UpOnFirstRetry(logging.Handler):
    def __init__(self, proxy: RpcProxy) -> None:
        super().__init__()
        self.proxy, self.retries = proxy, 0

    def emit(self, record: logging.LogRecord) -> None:
        if "trying again" in record.getMessage():
            self.retries += 1
            self.proxy.up()


@contextmanager
def chain_down_until_retried(devnet: Devnet) -> Iterator[tuple[RpcProxy, _UpOnFirstRetry]]:
    """The devnet's chain behind a proxy URL that refuses connections until ``ChainClient.connect`` logs that it
    will try again; yields the proxy and the handler (whose ``retries`` counts those logs)."""
    proxy = RpcProxy(devnet.anvil.port, port=free_port())
    handler = _UpOnFirstRetry(proxy)
    logger = logging.getLogger("marketplace.chain.client")
    logger.addHandler(handler)
    try:
        yield proxy, handler
    finally:
        logger.removeHandler(handler)
        proxy.down()
