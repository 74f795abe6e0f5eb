"""Run an ASGI app with uvicorn in a background thread on loopback (tests, a source's feed,
benchmarks), stopping cleanly on exit."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time

#: How often a stopping server looks whether its connections and tasks are done.
_SHUTDOWN_POLL = 0.005


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _prompt_server_class():
    """uvicorn's `Server`, told to stop by an event instead of noticing at its next tick.

    uvicorn's own `Server` looks at `should_exit` every 0.1 s and, stopping, waits a fixed
    0.1 s and then polls its connections every 0.1 s: 0.15-0.2 s of idle wall time at every
    `__exit__` (most of the 0.31 s a day the year replay's HTTP feed landing took, which
    starts and stops the feed's server). Same steps, same order: stop accepting, ask each
    connection to finish, wait (up to `timeout_graceful_shutdown`) for connections and tasks,
    then the app's lifespan shutdown; only the waits are prompt."""
    import uvicorn

    class PromptServer(uvicorn.Server):
        def __init__(self, config: uvicorn.Config) -> None:
            super().__init__(config)
            self.ready = threading.Event()
            self._wake = asyncio.Event()
            self._loop: asyncio.AbstractEventLoop | None = None

        def stop(self) -> None:
            """Ask the server to stop (from any thread)."""
            self.should_exit = True
            if self._loop is not None:
                with contextlib.suppress(RuntimeError):  # the loop already closed
                    self._loop.call_soon_threadsafe(self._wake.set)

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            self.ready.set()

        async def main_loop(self) -> None:
            self._loop = asyncio.get_running_loop()
            counter = 0
            while not await self.on_tick(counter):  # (the ticks keep the Date header fresh)
                counter = (counter + 1) % 864000
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 0.1)

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            for server in self.servers:
                server.close()
            for sock in sockets or []:
                sock.close()
            for connection in list(self.server_state.connections):
                connection.shutdown()
            timeout = self.config.timeout_graceful_shutdown
            deadline = None if timeout is None else time.monotonic() + timeout
            state = self.server_state
            while (state.connections or state.tasks) and not self.force_exit:
                if deadline is not None and time.monotonic() > deadline:
                    for task in state.tasks:
                        task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
                    break
                await asyncio.sleep(_SHUTDOWN_POLL)
            for server in self.servers:
                await server.wait_closed()
            if not self.force_exit:
                await self.lifespan.shutdown()

    return PromptServer


class BackgroundServer:
    def __init__(self, app, port: int | None = None, startup_timeout: float = 30) -> None:
        import uvicorn

        self.port = port or free_port()
        self.startup_timeout = startup_timeout
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False
        )
        self._server = _prompt_server_class()(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not self._server.ready.wait(0.02):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start on port {self.port}")
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()
        self._thread.join(timeout=30)
