"""Serving's pure parts, directly: parsing cost, the log's poison handling and files, hashing,
the circuit breaker, and the rules read from the contracts."""

from __future__ import annotations

import datetime as dt
import gc
import json
import tracemalloc

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from mlops_platform.serving.breaker import CircuitBreaker, CircuitOpen
from mlops_platform.serving.logfiles import read_log
from mlops_platform.serving.predictionlog import PartitionedLog, Repeat, keyed_hash
from mlops_platform.serving.protocols import loads, parse_mlflow_json
from mlops_platform.serving.rules import feature_ranges, feedback_problems, feedback_rules
from mlops_platform.specs import load_spec
from mlops_platform_tests.serving_support import wait_until

SPEC = load_spec("flight_delay")
WANTED = list(SPEC.features.columns)


def records_body(n: int) -> bytes:
    """n records, each with the model's columns and 8 keys no other record has."""
    row = {c: 1.0 for c in WANTED}
    return json.dumps(
        {"dataframe_records": [{**row, **{f"k{i}_{j}": j for j in range(8)}} for i in range(n)]}
    ).encode()


def test_parsing_records_is_linear_in_memory():
    body = records_body(6000)  # ~1 MB, ~48,000 distinct keys
    assert len(body) > 1_000_000
    payload = loads(body)
    tracemalloc.start()
    columns, rows = parse_mlflow_json(payload, WANTED, 100_000)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert rows == 6000 and set(columns) == set(WANTED)
    # The model's columns only: rows x columns pointers, not rows x every invented key.
    assert peak < 5_000_000, peak  # every key for every row: 48,000 x 6,000 pointers (~2.3 GB)
    small = loads(records_body(600))
    tracemalloc.start()
    parse_mlflow_json(small, WANTED, 100_000)
    _, small_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 15 * small_peak  # 10x the rows: about 10x the memory


@pytest.mark.parametrize(
    "body,expected",
    [
        (b'{"x": NaN, "y": [1, Infinity]}', "ok"),  # the standard parser's tokens
        (b'{"x": 1' + b"0" * 30 + b"}", "ok"),  # over 64 bits: a float
        (b'{"x": 1' + b"0" * 400 + b"}", "beyond the float range"),
        (b"[" * 5000 + b"]" * 5000, "nested deeper than 1024"),  # orjson's limit
        (b'{"x": NaN, "y": ' + b"[" * 300 + b"]" * 300 + b"}", "nested deeper than 256"),
        (b'{"x": NaN, "s": "[[[[\\"[["}', "ok"),  # brackets in strings do not count
        (b"{not json", "invalid JSON"),
    ],
)
def test_json_bodies_are_parsed_or_refused_by_name(body, expected):
    from mlops_platform.serving.protocols import ProtocolError

    if expected == "ok":
        assert isinstance(loads(body), dict)
    else:
        with pytest.raises(ProtocolError, match=expected):
            loads(body)


def flush_until(predicate, timeout: float = 20) -> None:
    wait_until(predicate, "the prediction log's writer to flush", timeout)


def schema():
    import pyarrow as pa

    return pa.schema([("ts", pa.timestamp("us")), ("request_id", pa.string()), ("x", pa.float64())])


def batch(ids, x=1.0):
    now = dt.datetime(2026, 1, 2, 3, 4)
    return {"ts": [now] * len(ids), "request_id": list(ids), "x": [x] * len(ids)}


def test_poison_batches_are_dropped_counted_and_never_block_the_log(tmp_path):
    drops = []
    log = PartitionedLog(
        tmp_path, schema(), flush_seconds=0.05, on_drop=lambda n, r: drops.append(r)
    )
    log.append(batch([12345]))  # a numeric id in a string column
    log.append(batch(["\ud800"]))  # a lone surrogate cannot be UTF-8
    log.append(batch(["bad"], x="not a number"))
    good = [f"good-{i}" for i in range(50)]
    for i in range(0, 50, 5):
        log.append(batch(good[i : i + 5]))
    flush_until(lambda: log.written == 50)
    more = [f"later-{i}" for i in range(10)]
    log.append(batch(more))
    log.close()
    assert log.dropped == 3 and len(drops) == 3
    stored = read_log(tmp_path)
    assert sorted(stored["request_id"]) == sorted(good + more)


def test_queued_small_batches_leave_no_containers_for_the_gc(tmp_path):
    """Records waiting for the next flush are joined into a few long lists as they arrive:
    a thousand queued batches of lists (their dicts and lists freed) are not a thousand
    dicts of lists that every young collection of the serving process would traverse."""
    log = PartitionedLog(tmp_path, schema(), flush_seconds=3600)  # one flush: at close
    gc.collect()
    before = len(gc.get_objects())
    for i in range(1000):
        log.append(batch([f"id-{i}"], x=float(i)))
    tracked = len(gc.get_objects()) - before
    log.close()
    assert tracked < 100, tracked
    stored = read_log(tmp_path)
    assert list(stored["request_id"]) == [f"id-{i}" for i in range(1000)]
    assert list(stored["x"]) == [float(i) for i in range(1000)]


def hashed_log(directory, **options) -> PartitionedLog:
    """A log that stores `request_id` as a keyed hash (key `k`)."""
    return PartitionedLog(
        directory,
        schema(),
        flush_seconds=0.05,
        hash_columns=frozenset({"request_id"}),
        hash_key=b"k",
        **options,
    )


def test_columnar_batches_land_like_lists_and_poison_ones_are_dropped(tmp_path):
    """Large batches come as numpy arrays and `Repeat`s (one value for every row): stored
    row for row like list batches, hashed alike, and dropped alone if they do not convert."""
    drops = []
    log = hashed_log(tmp_path, on_drop=lambda n, r: drops.append(n))
    now = dt.datetime(2026, 1, 2, 3, 4)
    log.append(batch(["a", "b"]))
    log.append({"ts": Repeat(now, 3), "request_id": Repeat("big", 3), "x": np.arange(3.0)})
    log.append({"ts": Repeat(now, 2), "request_id": Repeat("bad", 2), "x": Repeat("no", 2)})
    log.append(batch(["c"], x=7.0))
    log.close()
    stored = read_log(tmp_path)
    assert list(stored["request_id"]) == [keyed_hash(b"k", v) for v in "ab"] + [
        keyed_hash(b"k", "big")
    ] * 3 + [keyed_hash(b"k", "c")]
    assert list(stored["x"]) == [1.0, 1.0, 0.0, 1.0, 2.0, 7.0]
    assert set(stored["ts"]) == {pd.Timestamp(now)}
    assert drops == [2]


def test_list_batches_land_by_day_in_order_with_absent_columns_null(tmp_path):
    """Batches of lists are joined per day in one flush: each day's rows in order of arrival,
    a column a batch lacks (or gives no values) null for its rows."""
    log = PartitionedLog(tmp_path, schema(), flush_seconds=3600)  # one flush: at close
    day1, day2 = dt.datetime(2026, 1, 1, 23, 59), dt.datetime(2026, 1, 2, 0, 1)
    log.append({"ts": [day1, day1], "request_id": ["a", "b"], "x": [1.0, 2.0]})
    log.append({"ts": [day2], "request_id": ["c"]})  # no x
    log.append({"ts": [day1], "request_id": ["d"], "x": []})  # x without values
    log.append({"ts": [day2] * 2, "request_id": ["e", "f"], "x": [5.0, 6.0]})
    log.close()
    stored = read_log(tmp_path)
    assert list(stored["request_id"]) == ["a", "b", "d", "c", "e", "f"]
    assert stored["x"].tolist()[:2] == [1.0, 2.0] and stored["x"].tolist()[4:] == [5.0, 6.0]
    assert stored["x"].iloc[2:4].isna().all()
    assert [str(t.date()) for t in stored["ts"]] == ["2026-01-01"] * 3 + ["2026-01-02"] * 3


def test_repeat_is_a_sequence_of_one_value():
    column = Repeat("v", 5)
    assert len(column) == 5 and list(column) == ["v"] * 5 and column[-1] == "v"
    assert column[1:4] == Repeat("v", 3) and column[4:9] == Repeat("v", 1)
    with pytest.raises(IndexError):
        column[5]


def test_replicas_write_unique_files_compacted_and_read_once(tmp_path):
    replicas = [PartitionedLog(tmp_path, schema(), flush_seconds=0.02) for _ in range(2)]
    expected = []
    for n in range(30):  # many flushes each
        for r, log in enumerate(replicas):
            ids = [f"r{r}-{n}-{i}" for i in range(3)]
            expected += ids
            log.append(batch(ids))
        for log in replicas:  # each round is flushed before the next: one file per round
            flush_until(lambda log=log, n=n: log.written == 3 * (n + 1))
    assert len(list(tmp_path.rglob("part-*.parquet"))) > 2  # one per flush before merging
    before_merge = read_log(tmp_path)
    # small files are written plainly (read once, by the merge); merged ones compressed
    small = pq.ParquetFile(next(tmp_path.rglob("part-*.parquet"))).metadata.row_group(0)
    assert small.column(0).compression == "UNCOMPRESSED" and not small.column(0).is_stats_set
    for log in replicas:
        log.close()  # merges its own files
    files = sorted(p.name for p in tmp_path.rglob("*.parquet"))
    assert len(files) == 2 and all(f.startswith("merged-") for f in files), files
    merged = pq.ParquetFile(next(tmp_path.rglob("merged-*.parquet"))).metadata.row_group(0)
    assert merged.column(0).compression == "SNAPPY" and merged.column(0).is_stats_set
    assert replicas[0].token != replicas[1].token
    after = read_log(tmp_path)
    assert sorted(after["request_id"]) == sorted(expected) == sorted(before_merge["request_id"])


def test_identifying_columns_are_stored_as_keyed_hashes(tmp_path):
    log = hashed_log(tmp_path)
    log.append(batch(["N12345", "N12345", "N999"]))
    log.close()
    stored = list(read_log(tmp_path)["request_id"])
    assert "N12345" not in stored and stored[0] == stored[1] != stored[2]
    assert stored[0] == keyed_hash(b"k", "N12345") != keyed_hash(b"other", "N12345")
    with pytest.raises(ValueError, match="hash_key"):
        PartitionedLog(tmp_path, schema(), hash_columns=frozenset({"request_id"}))


def test_the_log_hashes_every_classified_column_and_shares_one_generated_key(tmp_path):
    from mlops_platform.serving.privacy import hash_key, hashed_columns

    logged = ["request_id", "tailnum", "carrier", "score"]
    assert hashed_columns("", logged) == {"tailnum"}  # a quasi-identifier in the contracts
    assert hashed_columns("request_id, nope", logged) == {"tailnum", "request_id"}
    assert hashed_columns("", ["carrier", "score"]) == frozenset()
    key_file = tmp_path / "keys" / "hash.key"
    first = hash_key("", key_file)
    assert len(first) == 64 and hash_key("", key_file) == first  # replicas share it
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert hash_key("configured", key_file) == b"configured"


def test_circuit_breaker_opens_then_tries_again():
    now = [100.0]  # a clock the test moves, so no wait depends on the machine's speed
    breaker = CircuitBreaker("registry", failures=2, reset_seconds=30, clock=lambda: now[0])
    calls = []

    def down():
        calls.append(1)
        raise ConnectionError("down")

    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(down)
    with pytest.raises(CircuitOpen):
        breaker.call(down)
    assert len(calls) == 2 and breaker.state == "open"  # not called while open
    now[0] += 29.9
    assert breaker.state == "open"
    now[0] += 0.1
    assert breaker.state == "half-open" and breaker.call(lambda: "up") == "up"
    assert breaker.state == "closed"


def test_rules_come_from_the_contracts():
    from mlops_platform.contracts.rules import CONTRACTS

    ranges = feature_ranges(SPEC)
    assert ranges["distance"] == tuple(float(v) for v in CONTRACTS["flights"].ranges["distance"])
    assert set(ranges) <= set(SPEC.features.numeric)
    rules = feedback_rules(SPEC)
    assert rules.label == SPEC.target.column and rules.references
    today = dt.date(2026, 1, 1)
    known = {c: frozenset({"UA"}) for c in rules.references}
    good = {"year": 2013, "month": 2, "day": 9, "carrier": "UA", "origin": "EWR", "arr_delay": 3.0}
    assert feedback_problems(good, rules, known, today) == []
    cases = [
        ({"day": 29}, "not a real date"),
        ({"arr_delay": float("inf")}, "arr_delay"),
        ({"carrier": "XX"}, "carrier"),
        ({"year": 2027}, "future"),
    ]
    for change, fragment in cases:
        problems = feedback_problems({**good, **change}, rules, known, today)
        assert len(problems) == 1 and fragment in problems[0], (change, problems)


def test_rate_limiter_per_client_token_bucket():
    from mlops_platform.serving.guard import RateLimiter

    limiter = RateLimiter(rate=2.0, burst=3)
    assert [limiter.wait_seconds("a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.wait_seconds("a", 0.0) == pytest.approx(0.5)  # over: wait for a token
    assert limiter.wait_seconds("b", 0.0) == 0.0  # another client is not affected
    assert limiter.wait_seconds("a", 0.6) == 0.0  # refilled


class _GatedScorer:
    """Scores zeros; a call of `gated_rows` rows or more waits for `gate` (a large request's
    chunk held in scoring), so what else completes meanwhile is observable."""

    def __init__(self, gated_rows: int) -> None:
        import threading

        self.gate, self.gated_rows = threading.Event(), gated_rows
        #: set once a gated chunk is in `score`, waiting at the gate
        self.entered = threading.Event()
        self.order = ["x"]

    def matrix(self, columns, rows):
        import numpy as np

        return np.zeros((rows, 1))

    def score(self, matrix):
        import numpy as np

        if len(matrix) >= self.gated_rows:
            self.entered.set()
            assert self.gate.wait(30), "the test never opened the gate"
        return np.zeros(len(matrix))


def test_small_requests_are_scored_while_a_chunk_of_a_large_one_is_stuck():
    import asyncio
    import types

    from mlops_platform.serving.batcher import MicroBatcher
    from mlops_platform.serving.manager import ModelHandle
    from mlops_platform.serving.metrics import ServingMetrics

    scorer = _GatedScorer(gated_rows=2)
    handle = ModelHandle("m", "1", "champion", scorer)
    manager = types.SimpleNamespace(champion=handle, challenger=None)
    logged = []
    log = types.SimpleNamespace(append=logged.append)

    async def scenario():
        batcher = MicroBatcher(manager, ServingMetrics(), log, max_rows=4, chunk_rows=2)
        batcher.start()
        big = asyncio.create_task(batcher.score({"x": [1.0] * 6}, 6, "big", "test"))
        # The first chunk is in the model, held at the gate (a bound for a hang, not a budget).
        assert await asyncio.to_thread(scorer.entered.wait, 30), "the chunk never reached the model"
        smalls = [
            await asyncio.wait_for(batcher.score({"x": [1.0]}, 1, f"small{i}", "test"), 10)
            for i in range(3)
        ]
        # Every single row was answered while the large request's chunk could not finish.
        assert not big.done() and [len(s.scores) for s in smalls] == [1, 1, 1]
        scorer.gate.set()
        scored = await asyncio.wait_for(big, 30)
        await batcher.stop()
        return scored

    scored = asyncio.run(scenario())
    assert len(scored.scores) == 6
    # Nothing accepted is lost: the large request's rows are logged in order, after the smalls.
    rows = [(r["request_id"][i], r["row"][i]) for r in logged for i in range(len(r["row"]))]
    assert [row for rid, row in rows if rid == "big"] == list(range(6))
    assert [rid for rid, _ in rows[:3]] == ["small0", "small1", "small2"]


@pytest.mark.parametrize(
    "queued, max_rows, expected",
    [
        ([2, 2, 2], 4, [[2, 2], [2]]),  # up to max_rows per batch
        ([5, 1], 4, [[5], [1]]),  # an item larger than max_rows (a chunk) goes alone
        ([1, "gone", 1], 4, [[1, 1]]),  # requests given up on are skipped
    ],
)
def test_next_batch(queued, max_rows, expected):
    import asyncio
    from collections import deque

    from mlops_platform.serving.batcher import MicroBatcher, Pending

    loop = asyncio.new_event_loop()
    try:
        queue = deque()
        for rows in queued:
            future = loop.create_future()
            if rows == "gone":
                future.cancel()
            queue.append(Pending({}, 1 if rows == "gone" else rows, "r", "test", False, future))
        batcher = MicroBatcher(None, None, None, max_rows=max_rows)
        batches = []
        while queue:
            batches.append([item.rows for item in batcher._next_batch(queue)])  # noqa: SLF001
        assert batches == expected
    finally:
        loop.close()


@pytest.mark.parametrize(
    "expr, names",
    [
        ('sum by (route) (rate(http_requests_total{job=~"$job"}[$__rate_interval]))',
         {"http_requests_total"}),
        ("histogram_quantile(0.99, sum by (le, route) (rate(latency_bucket[5m])))",
         {"latency_bucket"}),
        ('a_sum{x="rate(b)"} / clamp_min(sum(rate(c_count[1m])), 1e-9)', {"a_sum", "c_count"}),
        ("max by (instance, alias) (model_version_info) or on (alias) up",
         {"model_version_info", "up"}),
    ],
)  # fmt: skip
def test_promql_metric_names(expr, names):
    from mlops_platform_tests.dashboard_support import promql_metric_names

    assert promql_metric_names(expr) == names


def test_the_dashboard_covers_what_the_issue_asks_and_prometheus_scrapes_the_replicas():
    import yaml

    from mlops_platform_tests.dashboard_support import (
        DEPLOY,
        dashboard_queries,
        promql_metric_names,
    )

    used = set().union(*map(promql_metric_names, dashboard_queries()))
    # latency by route, errors, score distribution, model version, prediction-log drops
    for name in (
        "http_request_duration_seconds_bucket",
        "http_request_errors_total",
        "prediction_score_bucket",
        "model_version_info",
        "log_records_dropped_total",
    ):
        assert name in used, name
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    assert {"serving_1:8081", "serving_2:8082"} <= targets
    assert all(job["metrics_path"] == "/metrics" for job in config["scrape_configs"])
