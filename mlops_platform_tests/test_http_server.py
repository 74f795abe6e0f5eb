"""The loopback server (`http_server.BackgroundServer`) stops cleanly: a request in flight
when it is told to stop is answered, idle keep-alive connections are closed, and the port
refuses connections once `__exit__` returns."""

import socket
import threading

import requests

from mlops_platform.http_server import BackgroundServer


def _app(started: threading.Event, release: threading.Event):
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict:
        return {"ok": True}

    @app.get("/slow")
    def slow() -> dict:
        started.set()
        release.wait(10)
        return {"done": True}

    return app


def _refuses(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_exit_closes_the_port_and_idle_keep_alive_connections():
    session = requests.Session()
    with BackgroundServer(_app(threading.Event(), threading.Event())) as server:
        assert session.get(server.url + "/ping", timeout=5).json() == {"ok": True}
        port = server.port
    assert _refuses(port)
    # The pooled keep-alive connection was closed by the server: a new request cannot use it.
    try:
        session.get(f"http://127.0.0.1:{port}/ping", timeout=5)
        raise AssertionError("the stopped server answered")
    except requests.ConnectionError:
        pass


def test_a_request_in_flight_at_exit_is_answered():
    started, release = threading.Event(), threading.Event()
    answers: list[dict] = []
    server = BackgroundServer(_app(started, release))
    with server:
        client = threading.Thread(
            target=lambda: answers.append(requests.get(server.url + "/slow", timeout=10).json())
        )
        client.start()
        assert started.wait(5)
        threading.Timer(0.3, release.set).start()  # released while the server is stopping
    client.join(10)
    assert answers == [{"done": True}]
    assert _refuses(server.port)


def test_a_server_that_cannot_bind_raises_instead_of_waiting():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        try:
            with BackgroundServer(_app(threading.Event(), threading.Event()), port=port):
                raise AssertionError("started on a port in use")
        except RuntimeError as exc:
            assert str(port) in str(exc)


def test_a_shared_server_is_started_once_per_key_and_stopped_with_the_others():
    from mlops_platform.http_server import shared_server, stop_shared_servers

    made: list[BackgroundServer] = []

    def make() -> BackgroundServer:
        made.append(BackgroundServer(_app(threading.Event(), threading.Event())))
        return made[-1]

    first = shared_server(("test", 1), make)
    assert shared_server(("test", 1), make) is first
    other = shared_server(("test", 2), make)
    assert other is not first and len(made) == 2
    for server in (first, other):
        assert requests.get(server.url + "/ping", timeout=5).json() == {"ok": True}
    # A server that stopped (here: told to, as at exit) is replaced by the next caller.
    first.__exit__(None, None, None)
    again = shared_server(("test", 1), make)
    assert again is not first and again.running and len(made) == 3
    stop_shared_servers()
    assert not again.running and not other.running
    assert _refuses(again.port) and _refuses(other.port)


def test_shared_servers_beyond_the_limit_stop_the_least_recently_used():
    from mlops_platform.http_server import MAX_SHARED, shared_server, stop_shared_servers

    def make() -> BackgroundServer:
        return BackgroundServer(_app(threading.Event(), threading.Event()))

    servers = [shared_server(("limit", i), make) for i in range(MAX_SHARED)]
    assert shared_server(("limit", 0), make) is servers[0]  # now the most recently used
    newest = shared_server(("limit", MAX_SHARED), make)
    assert not servers[1].running and _refuses(servers[1].port)
    assert all(s.running for s in [servers[0], *servers[2:], newest])
    stop_shared_servers()
