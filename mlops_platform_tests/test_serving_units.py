"""Serving's pure parts, directly: parsing cost, the log's poison handling and files, hashing,
the circuit breaker, and the rules read from the contracts."""

from __future__ import annotations

import datetime as dt
import json
import time
import tracemalloc

import pytest

from mlops_platform.serving.breaker import CircuitBreaker, CircuitOpen
from mlops_platform.serving.logfiles import read_log
from mlops_platform.serving.predictionlog import PartitionedLog, keyed_hash
from mlops_platform.serving.protocols import loads, parse_mlflow_json
from mlops_platform.serving.rules import feature_ranges, feedback_problems, feedback_rules
from mlops_platform.specs import load_spec

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
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.05)


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


def test_replicas_write_unique_files_compacted_and_read_once(tmp_path):
    replicas = [PartitionedLog(tmp_path, schema(), flush_seconds=0.02) for _ in range(2)]
    expected = []
    for n in range(30):  # many flushes each
        for r, log in enumerate(replicas):
            ids = [f"r{r}-{n}-{i}" for i in range(3)]
            expected += ids
            log.append(batch(ids))
        time.sleep(0.03)
    for log in replicas:
        flush_until(lambda log=log: log.written == 90)
    assert len(list(tmp_path.rglob("part-*.parquet"))) > 2  # one per flush before merging
    before_merge = read_log(tmp_path)
    for log in replicas:
        log.close()  # merges its own files
    files = sorted(p.name for p in tmp_path.rglob("*.parquet"))
    assert len(files) == 2 and all(f.startswith("merged-") for f in files), files
    assert replicas[0].token != replicas[1].token
    after = read_log(tmp_path)
    assert sorted(after["request_id"]) == sorted(expected) == sorted(before_merge["request_id"])


def test_identifying_columns_are_stored_as_keyed_hashes(tmp_path):
    log = PartitionedLog(
        tmp_path,
        schema(),
        flush_seconds=0.05,
        hash_columns=frozenset({"request_id"}),
        hash_key=b"k",
    )
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
    breaker = CircuitBreaker("registry", failures=2, reset_seconds=0.2)
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
    time.sleep(0.25)
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


def test_chunks_of_a_large_request_take_turns_with_small_requests():
    import asyncio

    from mlops_platform.serving.batcher import MicroBatcher, Pending

    loop = asyncio.new_event_loop()
    try:
        batcher = MicroBatcher(None, None, None, max_rows=4, chunk_rows=2)

        def pending(name, rows):
            return Pending({}, rows, name, "test", False, loop.create_future())

        batcher._chunks.extend(pending(f"big{i}", 2) for i in range(3))  # noqa: SLF001
        order = []
        for step in range(6):
            if step == 1:  # single rows arrive while the large request is being scored
                batcher._small.extend(pending(f"small{i}", 1) for i in range(2))  # noqa: SLF001
            batch = batcher._next_batch()  # noqa: SLF001 - the scheduling decision itself
            order.append([item.request_id for item in batch])
        # The waiting single rows go right after the chunk in progress, not after all chunks.
        assert order == [["big0"], ["small0", "small1"], ["big1"], ["big2"], [], []]
    finally:
        loop.close()
