"""Hostile requests over real HTTP: every one a clear 4xx in bounded time, never a 500 or a
stall, and the service keeps serving (one real server for the module)."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import socket
import threading
import time

import httpx
import pytest

from mlops_platform.registry.store import ModelRegistry
from mlops_platform.serving.predictionlog import read_log
from mlops_platform.warehouse.resources import DuckDBWarehouse
from mlops_platform_tests import serving_support
from mlops_platform_tests.serving_support import (
    ROW,
    SPEC,
    TOKEN,
    serve,
    wait_ready,
    wait_until,
)

models = serving_support.models  # fixture

LIMITS = {
    "max_body_bytes": 3_000_000,
    "max_request_rows": 20_000,
    "chunk_rows": 1024,
    "max_concurrent": 6,
    "request_timeout_seconds": 3,
    "max_header_bytes": 8_000,
}
INFER = f"/v2/models/{SPEC.name}/infer"


@pytest.fixture(scope="module")
def server(models, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    shutil.copy(models / "mlflow.db", tmp / "mlflow.db")
    shutil.copy(models / "warehouse.duckdb", tmp / "warehouse.duckdb")
    registry = ModelRegistry(f"sqlite:///{tmp / 'mlflow.db'}", str(models / "artifacts"))
    warehouse = DuckDBWarehouse(path=str(tmp / "warehouse.duckdb"))
    with serve((registry, warehouse, tmp), **LIMITS) as running:
        wait_ready(running.url)
        running.tmp = tmp
        yield running


def oip(rows: list[dict], **extra) -> dict:
    names = list(rows[0])
    inputs = [
        {
            "name": n,
            "shape": [len(rows)],
            "datatype": "BYTES" if n in SPEC.features.categorical else "FP64",
            "data": [r[n] for r in rows],
        }
        for n in names
    ]
    return {"inputs": inputs, **extra}


def raw_json(body: str) -> dict:
    return {"content": body.encode(), "headers": {"content-type": "application/json"}}


DEEP = "[" * 5000 + "]" * 5000
HUGE_INT = json.dumps({"dataframe_records": [ROW]}).replace(
    '"distance": 1400', '"distance": 1' + "0" * 400
)
CSV_HEADER = ",".join(ROW)
CSV_ROW = ",".join("" if v is None else str(v) for v in ROW.values())

# (name, method, path, request kwargs, status, fragment of the error message)
CASES = [
    ("deep nesting", "POST", "/invocations", raw_json(DEEP), 400, "nested deeper"),
    ("deep nesting oip", "POST", INFER, raw_json(DEEP), 400, "nested deeper"),
    ("deep nesting typed", "POST", "/predict", raw_json(DEEP), 422, "recursion limit"),
    ("deep nesting feedback", "POST", "/feedback", raw_json(DEEP), 422, "recursion limit"),
    ("integer beyond float", "POST", "/invocations", raw_json(HUGE_INT), 400, "float range"),
    (
        "columns not a list",
        "POST",
        "/invocations",
        {"json": {"dataframe_split": {"columns": "carrier", "data": [[1]]}}},
        400,
        "columns must be a list",
    ),
    (
        "shape not integers",
        "POST",
        INFER,
        {
            "json": {
                "inputs": [{"name": "carrier", "shape": ["x"], "datatype": "BYTES", "data": ["UA"]}]
            }
        },
        400,
        "shape",
    ),
    (
        "name not a string",
        "POST",
        INFER,
        {"json": {"inputs": [{"name": 5, "shape": [1], "datatype": "FP64", "data": [1]}]}},
        400,
        "name must be a string",
    ),
    ("unknown OIP path", "GET", "/v2/nothing/here", {}, 404, "Not Found"),
    ("wrong OIP method", "PUT", INFER, {}, 405, "Method Not Allowed"),
    ("numeric OIP id", "POST", INFER, {"json": oip([ROW], id=7)}, 400, "'id' must be a string"),
    ("long OIP id", "POST", INFER, {"json": oip([ROW], id="i" * 500)}, 400, "'id' is longer"),
    (
        "non-integer header length",
        "POST",
        INFER,
        {"json": oip([ROW]), "headers": {"inference-header-content-length": "abc"}},
        400,
        "must be an integer",
    ),
    (
        "oversized CSV field",
        "POST",
        "/invocations",
        {
            "content": f"{CSV_HEADER}\n{'x' * 200_000},{CSV_ROW}".encode(),
            "headers": {"content-type": "text/csv"},
        },
        400,
        "field larger than field limit",
    ),
    (
        "text/plain on /predict",
        "POST",
        "/predict",
        {"content": b"hi", "headers": {"content-type": "text/plain"}},
        415,
        "application/json",
    ),
    (
        "boolean number",
        "POST",
        "/invocations",
        {"json": {"dataframe_records": [{**ROW, "seats": True}]}},
        400,
        "'seats' must be numeric",
    ),
    (
        "boolean number in a large request",  # parsed on the parse thread, numbers as a block
        "POST",
        "/invocations",
        {
            "json": {
                "dataframe_split": {
                    "columns": list(ROW),
                    "data": [list(ROW.values())] * 999 + [list({**ROW, "seats": False}.values())],
                }
            }
        },
        400,
        "'seats' must be numeric, got False",
    ),
    (
        "list as category",
        "POST",
        "/invocations",
        {"json": {"dataframe_records": [{**ROW, "carrier": ["UA"]}]}},
        400,
        "'carrier' row 0",
    ),
    (
        "lone surrogate",
        "POST",
        "/invocations",
        raw_json(json.dumps({"dataframe_records": [ROW]}).replace('"UA"', '"\\ud800"')),
        400,
        "surrogate",
    ),
    (
        "too many rows",
        "POST",
        "/invocations",
        {"json": {"dataframe_split": {"columns": ["carrier"], "data": [["UA"]] * 20_001}}},
        413,
        "at most 20000",
    ),
    (
        "long request id",
        "GET",
        "/v2/models/flight_delay",
        {"headers": {"x-request-id": "x" * 500}},
        400,
        "X-Request-ID",
    ),
    ("huge header", "GET", "/version", {"headers": {"x-filler": "y" * 9_000}}, 431, "headers over"),
]

# The value policy: the same decision on every route (reject naming column and row).
VALUE_CASES = [
    ("Infinity", "Infinity", "not a finite number"),
    ("-Infinity", "-Infinity", "not a finite number"),
    ("out of range", "99999", "outside the declared range [1, 6000]"),
]


@pytest.mark.parametrize(
    "name,method,path,kwargs,status,fragment", CASES, ids=[c[0] for c in CASES]
)
def test_hostile_requests_are_clear_4xx(server, name, method, path, kwargs, status, fragment):
    reply = httpx.request(method, f"{server.url}{path}", timeout=30, **kwargs)
    assert reply.status_code == status, reply.text[:300]
    body = reply.json()
    if path.startswith("/v2"):
        assert set(body) == {"error"}, body  # OIP errors are always {"error": ...}
    message = json.dumps(body)
    assert fragment in message, message[:300]


@pytest.mark.parametrize("label,token,fragment", VALUE_CASES, ids=[c[0] for c in VALUE_CASES])
def test_nan_infinity_and_ranges_one_policy_on_every_route(server, label, token, fragment):
    record = json.dumps({**ROW, "distance": 0}).replace('"distance": 0', f'"distance": {token}')
    bodies = {
        "/invocations": json.dumps(
            {"dataframe_records": [json.loads(record, parse_constant=float)]}
        ),
        INFER: json.dumps(oip([json.loads(record, parse_constant=float)])),
        "/predict": record,
    }
    for path, body in bodies.items():
        reply = httpx.post(f"{server.url}{path}", **raw_json(body))
        assert reply.status_code == 400, (path, reply.text)
        assert "distance" in reply.text and fragment in reply.text, (path, reply.text)
    csv = f"{CSV_HEADER}\n{CSV_ROW}".replace(",1400,", f",{'inf' if 'Inf' in token else token},")
    reply = httpx.post(
        f"{server.url}/invocations", content=csv, headers={"content-type": "text/csv"}
    )
    assert reply.status_code == 400 and "distance" in reply.text
    # NaN and null mean "unknown" everywhere: scored like a missing value.
    nan = json.dumps({"dataframe_records": [{**ROW, "temp": float("nan")}]})
    assert httpx.post(f"{server.url}/invocations", **raw_json(nan)).status_code == 200
    assert "rejected_values_total" in httpx.get(f"{server.url}/metrics").text


def test_body_over_the_limit_is_413_with_or_without_length(server):
    big = b'{"dataframe_records": [' + b" " * 3_100_000 + b"]}"

    def chunked():
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    # Every route that reads a body (a route that reads none answers before it arrives).
    for path in ("/invocations", INFER, "/predict", "/feedback", "/admin/rollback"):
        # (admin: with the token; without it the answer is 401 before any body is read)
        headers = {"content-type": "application/json", "authorization": f"Bearer {TOKEN}"}
        declared = httpx.post(f"{server.url}{path}", content=big, headers=headers)
        streamed = httpx.post(f"{server.url}{path}", content=chunked(), headers=headers)
        for reply in (declared, streamed):
            assert reply.status_code == 413, (path, reply.status_code, reply.text[:200])
            if path.startswith("/v2"):
                assert "error" in reply.json()
    assert httpx.get(f"{server.url}/ping").status_code == 200


def test_a_1mb_body_with_many_distinct_keys_is_parsed_in_bounded_time(server):
    # 1 MB of records, each with its own invented keys besides the model's columns.
    records, size = [], 0
    while size < 1_000_000:
        extra = {f"k{len(records)}_{j}": j for j in range(8)}
        records.append({**ROW, **extra})
        size += 700
    body = json.dumps({"dataframe_records": records})
    started = time.perf_counter()
    reply = httpx.post(f"{server.url}/invocations", **raw_json(body), timeout=60)
    took = time.perf_counter() - started
    assert reply.status_code == 200 and len(reply.json()["predictions"]) == len(records)
    assert took < 20, f"{len(body)} bytes took {took:.1f} s"  # generous: a busy machine


def test_a_single_row_is_not_stuck_behind_a_large_request(server):
    rows = 20_000
    big = {"dataframe_split": {"columns": list(ROW), "data": [list(ROW.values())] * rows}}
    body = json.dumps(big).encode()
    done: dict[str, float] = {}

    def send_big():
        reply = httpx.post(
            f"{server.url}/invocations",
            content=body,
            headers={"content-type": "application/json"},
            timeout=120,
        )
        assert reply.status_code == 200 and len(reply.json()["predictions"]) == rows
        done["big"] = time.monotonic()

    sender = threading.Thread(target=send_big)
    sender.start()
    small_done = []
    with httpx.Client() as client:
        while sender.is_alive():
            reply = client.post(f"{server.url}/predict", json=ROW)
            assert reply.status_code == 200
            small_done.append(time.monotonic())
    sender.join()
    during = [t for t in small_done if t < done["big"]]
    # Single rows kept completing while the large request was parsed and scored.
    assert len(during) >= 5, f"only {len(during)} single rows completed during the large one"


def _slow_request(url: str, path: str = "/invocations") -> socket.socket:
    """A request whose body never finishes: it stays in progress on the server."""
    host, port = url.removeprefix("http://").split(":")
    conn = socket.create_connection((host, int(port)))
    conn.sendall(
        f"POST {path} HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
        "content-length: 1000\r\n\r\n{".encode()
    )
    return conn


def _status(conn: socket.socket, timeout: float = 30) -> tuple[int, str]:
    conn.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    head = data.split(b"\r\n\r\n")[0].decode()
    return int(head.split()[1]), head


def _wait_in_flight(url: str, count: int, timeout: float = 30) -> None:
    """Until the server counts `count` requests in progress (scrapes are never refused)."""

    def in_flight() -> bool:
        text = httpx.get(f"{url}/metrics").text
        found = re.search(r"^http_requests_in_flight (\S+)$", text, flags=re.M)
        return bool(found) and float(found.group(1)) >= count

    wait_until(in_flight, f"{count} requests in flight", timeout)


def test_concurrency_limit_and_request_timeout(server):
    slow = [_slow_request(server.url) for _ in range(LIMITS["max_concurrent"])]
    try:
        _wait_in_flight(server.url, LIMITS["max_concurrent"])
        over = httpx.post(f"{server.url}/predict", json=ROW)
        assert over.status_code == 503 and over.headers["retry-after"] == "1"
        assert httpx.get(f"{server.url}/ping").status_code == 200  # probes are exempt
        started = time.monotonic()
        statuses = [_status(conn)[0] for conn in slow]
        assert statuses == [504] * len(slow)  # timed out, not hung
        assert time.monotonic() - started < 25
    finally:
        for conn in slow:
            conn.close()
    assert httpx.post(f"{server.url}/predict", json=ROW).status_code == 200


def test_rate_limit_per_client_is_429(models, tmp_path):
    shutil.copy(models / "mlflow.db", tmp_path / "mlflow.db")
    registry = ModelRegistry(f"sqlite:///{tmp_path / 'mlflow.db'}", str(models / "artifacts"))
    warehouse = DuckDBWarehouse(path=str(tmp_path / "warehouse.duckdb"))
    limited = {"rate_limit_per_second": 0.5, "rate_limit_burst": 3}
    with serve((registry, warehouse, tmp_path), **limited) as running:
        wait_ready(running.url)
        codes = [httpx.get(f"{running.url}/version").status_code for _ in range(6)]
        assert codes[:3] == [200, 200, 200] and 429 in codes[3:]
        refused = httpx.get(f"{running.url}/version")
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert httpx.get(f"{running.url}/ping").status_code == 200  # probes are exempt


def test_bad_content_length_is_400(server):
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as conn:
        conn.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\ncontent-length: 1e3\r\n\r\n")
        status, _ = _status(conn)
    assert 400 <= status < 500


def test_docs_offline_head_and_versioned_kserve_routes(server):
    page = httpx.get(f"{server.url}/docs").text
    assert "/docs-assets/swagger-ui-bundle.js" in page and "cdn" not in page.lower()
    script = httpx.get(f"{server.url}/docs-assets/swagger-ui-bundle.js")
    assert script.status_code == 200 and len(script.content) > 100_000
    for path in ("/ping", "/health", "/v2/health/live", "/v2/health/ready"):
        head = httpx.head(f"{server.url}{path}")
        assert head.status_code == 200 and head.content == b"", path
    base = f"{server.url}/v2/models/{SPEC.name}/versions"
    assert httpx.get(f"{base}/1").json()["versions"] == ["1"]
    assert httpx.get(f"{base}/1/ready").json()["ready"] is True
    assert httpx.get(f"{base}/99/ready").status_code == 404
    assert httpx.post(f"{base}/99/infer", json=oip([ROW])).json()["error"]
    reply = httpx.post(f"{base}/1/infer", json=oip([ROW])).json()
    assert reply["model_version"] == "1"
    wait_until(  # the challenger is loaded a moment after the champion
        lambda: httpx.get(f"{base}/2/ready").status_code == 200, "the challenger ready", 10
    )
    challenger = httpx.post(f"{base}/2/infer", json=oip([ROW])).json()
    assert challenger["model_version"] == "2" and challenger["parameters"]["alias"] == "challenger"


def test_feedback_is_held_to_the_label_contract(server):
    good = {
        "year": 2013,
        "month": 2,
        "day": 9,
        "carrier": "UA",
        "flight": 1545,
        "origin": "EWR",
        "arr_delay": 22.0,
        "request_id": "fb-good",
    }
    future = dt.date.today() + dt.timedelta(days=3)
    bad = {
        "not a real date": ({"month": 2, "day": 30}, "not a real date"),
        "unknown carrier": ({"carrier": "ZZ"}, "carrier"),
        "unknown origin": ({"origin": "XXX"}, "origin"),
        "month out of range": ({"month": 13}, "month"),
        "label out of range": ({"arr_delay": 5000.0}, "arr_delay"),
        "future day": ({"year": future.year, "month": future.month, "day": future.day}, "future"),
        "unknown field": ({"tailnum": "N1"}, "tailnum"),
    }
    for name, (change, fragment) in bad.items():
        reply = httpx.post(f"{server.url}/feedback", json={**good, **change})
        assert reply.status_code == 422, (name, reply.text)
        assert fragment in reply.text, (name, reply.text)
    assert httpx.post(f"{server.url}/feedback", json=good).status_code == 202


def test_poison_requests_then_good_ones_all_land(server):
    poison = [
        httpx.post(f"{server.url}{INFER}", json=oip([ROW], id=12345)),
        httpx.post(
            f"{server.url}/invocations",
            **raw_json(json.dumps({"dataframe_records": [ROW]}).replace('"UA"', '"\\udc80"')),
        ),
    ]
    assert [p.status_code for p in poison] == [400, 400]
    ids = [f"after-poison-{i}" for i in range(20)]
    for request_id in ids:
        assert (
            httpx.post(
                f"{server.url}/predict", json=ROW, headers={"x-request-id": request_id}
            ).status_code
            == 200
        )

    def landed() -> bool:
        logged = read_log(server.tmp / "serving" / "predictions")
        return bool(len(logged)) and set(ids) <= set(logged["request_id"])

    wait_until(landed, "the good requests after the poison in the log", 20, poll=0.2)


def test_every_metric_the_grafana_dashboard_queries_is_exported(server):
    from mlops_platform_tests.dashboard_support import (
        dashboard_queries,
        exported_series,
        promql_metric_names,
    )

    reply = httpx.post(f"{server.url}/invocations", json={"dataframe_records": [ROW]})
    assert reply.status_code == 200
    exported = exported_series(httpx.get(f"{server.url}/metrics").text)
    queried = set().union(*map(promql_metric_names, dashboard_queries()))
    assert len(queried) >= 10, queried
    assert queried <= exported, f"queried but not exported: {sorted(queried - exported)}"
