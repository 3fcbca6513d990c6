"""The RPC proxy forwards to the chain, refuses and drops connections while down, and follows a new port."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from marketplace.chaos.proxy import RpcProxy


@contextmanager
def answering(text: str) -> Iterator[int]:
    """A real HTTP server on 127.0.0.1 answering ``text`` to every GET; yields its port."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server's name
            body = text.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_an_outage_refuses_connections_until_the_proxy_is_up_again() -> None:
    with answering("old chain") as port:
        proxy = RpcProxy(port).up()
        try:
            with httpx.Client() as client:
                assert client.get(proxy.url).text == "old chain"
                proxy.down()
                assert not proxy.is_up
                with pytest.raises(httpx.TransportError):  # the kept-alive connection is dropped, new ones refused
                    client.get(proxy.url, timeout=5)
                with pytest.raises(httpx.ConnectError):
                    httpx.get(proxy.url, timeout=5)
                proxy.up()
                assert client.get(proxy.url).text == "old chain"
        finally:
            proxy.down()


def test_retarget_sends_the_same_url_to_the_restarted_chain() -> None:
    with answering("old chain") as old, answering("new chain") as new:
        proxy = RpcProxy(old).up()
        try:
            url = proxy.url
            assert httpx.get(url).text == "old chain"
            proxy.retarget(new)
            assert httpx.get(url).text == "new chain"
        finally:
            proxy.down()
