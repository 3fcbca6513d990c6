"""A TCP proxy on 127.0.0.1 in front of the chain's RPC: an outage, then the chain back on another port.

Every process of a chaos run talks to the chain through it. ``down()`` closes the listening socket and
every open connection, so a request in flight fails and a new one is refused (ECONNREFUSED), as when a
provider's RPC endpoint goes away; ``up()`` listens again on the same port. ``retarget()`` sends new
connections to another port: an anvil restarted from a dumped state keeps the URL the daemons know.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024


@dataclass
class RpcProxy:
    target_port: int
    port: int = 0
    _listener: socket.socket | None = field(default=None, init=False, repr=False)
    _connections: set[socket.socket] = field(default_factory=set, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def is_up(self) -> bool:
        return self._listener is not None

    def up(self) -> RpcProxy:
        """Listens (again) on ``port``, or on a free port the first time when it is 0."""
        if self._listener is not None:
            return self
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), name=f"rpc-proxy-{self.port}", daemon=True).start()
        log.info("rpc proxy %s -> 127.0.0.1:%d", self.url, self.target_port)
        return self

    def down(self) -> None:
        """Refuses new connections and drops every open one."""
        listener, self._listener = self._listener, None
        if listener is not None:
            _close(listener)
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            _close(connection)
        log.info("rpc proxy %s down", self.url)

    def retarget(self, port: int) -> None:
        """New connections go to ``port``; open ones are dropped (they talk to the old chain)."""
        self.target_port = port
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            _close(connection)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by down()
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                _close(client)  # the chain itself is down: the caller sees a reset
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:
                    _close(client)
                    _close(upstream)
                    return
                self._connections |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(_CHUNK):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._connections -= {source, sink}
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
