"""Settings of the serving process, read from the environment (see .env.example)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from mlops_platform.settings import data_dir


def _first_spec() -> str:
    from mlops_platform.domains import enabled_spec_names

    names = enabled_spec_names()
    return names[0] if names else ""


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _float(name: str, default: str):
    return field(default_factory=lambda: float(_env(name, default)))


def _int(name: str, default: str):
    return field(default_factory=lambda: int(_env(name, default)))


@dataclass
class ServingSettings:
    #: the served spec; unset: the first enabled spec (MLOPS_MODEL_SPECS or the domains' defaults)
    model: str = field(default_factory=lambda: _env("MLOPS_SERVING_MODEL", "") or _first_spec())
    #: Bearer token for /admin routes; empty disables them (every call answers 401).
    admin_token: str = field(default_factory=lambda: _env("MLOPS_ADMIN_TOKEN", ""), repr=False)
    poll_seconds: float = _float("MLOPS_SERVING_POLL_SECONDS", "5")
    canary_percent: float = _float("MLOPS_SERVING_CANARY_PERCENT", "0")
    shadow: bool = field(
        default_factory=lambda: _env("MLOPS_SERVING_SHADOW", "true").lower() == "true"
    )
    max_body_bytes: int = _int("MLOPS_SERVING_MAX_BODY_BYTES", "1000000")
    max_batch_rows: int = _int("MLOPS_SERVING_MAX_BATCH_ROWS", "256")
    #: rows one request may carry (413 past it)
    max_request_rows: int = _int("MLOPS_SERVING_MAX_REQUEST_ROWS", "10000")
    #: a request over max_batch_rows is scored in chunks of this many rows on its own model
    #: thread (a 1,000-row request is one scikit-learn call: ~4 ms a call plus ~10 us a row)
    chunk_rows: int = _int("MLOPS_SERVING_CHUNK_ROWS", "1024")
    max_header_bytes: int = _int("MLOPS_SERVING_MAX_HEADER_BYTES", "16384")
    max_request_id_chars: int = _int("MLOPS_SERVING_MAX_REQUEST_ID_CHARS", "128")
    #: requests in progress at once (503 with Retry-After past it); health/metrics exempt
    max_concurrent: int = _int("MLOPS_SERVING_MAX_CONCURRENT", "256")
    #: a request not answered within this is answered 504 (slow bodies included)
    request_timeout_seconds: float = _float("MLOPS_SERVING_REQUEST_TIMEOUT_SECONDS", "30")
    #: per client address; 0 disables the rate limit (429 past it)
    rate_limit_per_second: float = _float("MLOPS_SERVING_RATE_LIMIT_PER_SECOND", "0")
    rate_limit_burst: int = _int("MLOPS_SERVING_RATE_LIMIT_BURST", "20")
    #: registry calls: consecutive failures that open the circuit, and how long it stays open
    breaker_failures: int = _int("MLOPS_SERVING_BREAKER_FAILURES", "3")
    breaker_reset_seconds: float = _float("MLOPS_SERVING_BREAKER_RESET_SECONDS", "30")
    decision_threshold: float = _float("MLOPS_SERVING_DECISION_THRESHOLD", "0.5")
    log_dir: str = field(
        default_factory=lambda: _env("MLOPS_PREDICTION_LOG_DIR", str(data_dir() / "serving"))
    )
    #: each replica merges its own small log files this often
    log_compact_seconds: float = _float("MLOPS_SERVING_LOG_COMPACT_SECONDS", "60")
    #: logged columns stored as a keyed hash (until contracts classify columns)
    hash_columns: str = field(default_factory=lambda: _env("MLOPS_SERVING_HASH_COLUMNS", ""))
    #: key of those hashes; empty: generated once under the log directory
    hash_key: str = field(default_factory=lambda: _env("MLOPS_SERVING_HASH_KEY", ""), repr=False)
    retry_seconds: float = _float("MLOPS_SERVING_RETRY_SECONDS", "2")
