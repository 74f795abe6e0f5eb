"""Run an ASGI app with uvicorn in a background thread on loopback (tests, a source's local
stand-in, benchmarks): `BackgroundServer` for the length of a `with` block, `shared_server`
for the life of the process."""

from __future__ import annotations

import atexit
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

#: How often a starting server is looked at until it accepts connections.
_STARTUP_POLL = 0.01


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class BackgroundServer:
    def __init__(self, app, port: int | None = None, startup_timeout: float = 30) -> None:
        import uvicorn

        self.port = port or free_port()
        self.startup_timeout = startup_timeout
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """Started, not told to stop, and its thread alive (in this process: a forked child
        has none of its parent's threads)."""
        return self._server.started and not self._server.should_exit and self._thread.is_alive()

    def __enter__(self):
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start on port {self.port}")
            time.sleep(_STARTUP_POLL)
        return self

    def __exit__(self, *exc: object) -> None:
        # uvicorn notices within 0.1 s, then finishes the requests in flight and closes every
        # connection (0.1-0.2 s in all).
        self._server.should_exit = True
        self._thread.join(timeout=30)


#: Servers `shared_server` keeps running, least recently asked for first.
_SHARED: OrderedDict[Hashable, BackgroundServer] = OrderedDict()
_SHARED_LOCK = threading.Lock()
_STOP_AT_EXIT: list[bool] = []
#: How many it keeps: an idle uvicorn still wakes every 0.1 s (~1.4 ms of CPU a second), and a
#: process that reads many databases in turn (a test worker) would keep one for each.
MAX_SHARED = 4


def shared_server(key: Hashable, make: Callable[[], BackgroundServer]) -> BackgroundServer:
    """The running server `make()` builds for `key`, started by the first caller in this
    process and kept for its later callers until the process exits (then stopped as
    `__exit__` stops a server).

    For a local stand-in that every run of a process reads: the year replay runs every day in
    one process, and starting and stopping uvicorn for each run was a fixed cost of each day
    (a thread, the app, the startup, and the stop). A process that runs once (a run worker)
    starts it once and stops it when it exits. Beyond `MAX_SHARED` keys, the server asked
    for least recently is stopped."""
    with _SHARED_LOCK:
        server = _SHARED.get(key)
        if server is None or not server.running:
            server = make()
            server.__enter__()
            _SHARED[key] = server
            if not _STOP_AT_EXIT:
                atexit.register(stop_shared_servers)
                _STOP_AT_EXIT.append(True)
        _SHARED.move_to_end(key)
        while len(_SHARED) > MAX_SHARED:
            _, oldest = _SHARED.popitem(last=False)
            if oldest.running:
                oldest.__exit__(None, None, None)
        return server


def stop_shared_servers() -> None:
    """Stop every server `shared_server` started in this process (at exit, or by a test)."""
    with _SHARED_LOCK:
        servers = list(_SHARED.values())
        _SHARED.clear()
    for server in servers:
        if server.running:
            server.__exit__(None, None, None)
