"""Bounded waits for every outside call: timeouts, retries with backoff, lock conflicts.

Plain functions and settings read from the environment when called (never at import), with the
defaults listed in `.env.example`. No Dagster, no heavy imports.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger("mlops.reliability")

T = TypeVar("T")


def _number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if value < 0:
        raise ValueError(f"{name}={raw!r} must not be negative")
    return value


@dataclass(frozen=True)
class Timeouts:
    """Every outside call's bound, from `MLOPS_*` variables (defaults in `.env.example`)."""

    #: Total time a DuckDB open waits for another process's write lock to go.
    warehouse_lock_wait_s: float = 10.0
    pg_connect_s: float = 10.0
    #: Per SQL statement on the warehouse and the source (0 = no limit).
    pg_statement_ms: int = 600_000
    mlflow_http_s: float = 30.0
    mlflow_http_retries: int = 3
    webhook_s: float = 5.0
    webhook_retries: int = 3

    @classmethod
    def from_env(cls) -> Timeouts:
        d = cls()
        return cls(
            warehouse_lock_wait_s=_number(
                "MLOPS_WAREHOUSE_LOCK_WAIT_SECONDS", d.warehouse_lock_wait_s
            ),
            pg_connect_s=_number("MLOPS_PG_CONNECT_TIMEOUT_SECONDS", d.pg_connect_s),
            pg_statement_ms=int(_number("MLOPS_PG_STATEMENT_TIMEOUT_MS", d.pg_statement_ms)),
            mlflow_http_s=_number("MLOPS_MLFLOW_HTTP_TIMEOUT_SECONDS", d.mlflow_http_s),
            mlflow_http_retries=int(
                _number("MLOPS_MLFLOW_HTTP_MAX_RETRIES", d.mlflow_http_retries)
            ),
            webhook_s=_number("MLOPS_ALERT_WEBHOOK_TIMEOUT_SECONDS", d.webhook_s),
            webhook_retries=int(_number("MLOPS_ALERT_WEBHOOK_RETRIES", d.webhook_retries)),
        )


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter and a bound on the total time slept."""

    first_s: float = 0.05
    factor: float = 2.0
    max_delay_s: float = 2.0
    total_s: float = 15.0

    def delays(self):
        """Sleep lengths, in order, until the total would be exceeded."""
        slept, delay = 0.0, self.first_s
        while slept < self.total_s:
            # Up to 25% jitter so two waiters do not retry in lockstep.
            step = min(delay * (1 + random.random() / 4), self.max_delay_s, self.total_s - slept)
            yield step
            slept += step
            delay *= self.factor


def retry(
    call: Callable[[], T],
    retryable: Callable[[BaseException], bool],
    backoff: Backoff,
    what: str = "call",
) -> T:
    """`call()`, retried while it raises an error `retryable` accepts, sleeping per `backoff`;
    the last error is raised once the total wait is used up."""
    delays = backoff.delays()
    while True:
        try:
            return call()
        except Exception as exc:
            if not retryable(exc):
                raise
            delay = next(delays, None)
            if delay is None:
                raise
            log.info("%s: %s; retrying in %.2fs", what, str(exc).splitlines()[0][:200], delay)
            time.sleep(delay)


def is_lock_conflict(exc: BaseException) -> bool:
    """DuckDB's error when another process holds the file's write lock."""
    return "Conflicting lock" in str(exc) or "Could not set lock on file" in str(exc)


def lock_backoff(timeouts: Timeouts | None = None) -> Backoff:
    timeouts = timeouts or Timeouts.from_env()
    return Backoff(total_s=timeouts.warehouse_lock_wait_s)


def pg_connect_args(url: str, timeouts: Timeouts | None = None) -> dict:
    """psycopg `connect_args` bounding connection and statement time on a PostgreSQL URL.

    libpq's `options` from the URL (e.g. a search_path) are kept: SQLAlchemy would otherwise
    replace them with these."""
    import sqlalchemy as sa

    parsed = sa.engine.make_url(url)
    if not parsed.drivername.startswith("postgresql"):
        return {}
    timeouts = timeouts or Timeouts.from_env()
    options = parsed.query.get("options", "")
    if isinstance(options, tuple):
        options = " ".join(options)
    if "statement_timeout" not in options:
        options = f"{options} -c statement_timeout={timeouts.pg_statement_ms}".strip()
    return {"connect_timeout": max(1, round(timeouts.pg_connect_s)), "options": options}


def with_pg_timeouts(url: str, timeouts: Timeouts | None = None) -> str:
    """The same bounds written into a PostgreSQL URL, for clients that take a URL only
    (dlt and connectorx, MLflow's tracking store). Other URLs are returned unchanged."""
    import sqlalchemy as sa

    timeouts = timeouts or Timeouts.from_env()
    args = pg_connect_args(url, timeouts)
    if not args:
        return url
    from urllib.parse import quote, urlencode

    parsed = sa.engine.make_url(url)
    query = dict(parsed.query)
    query.setdefault("connect_timeout", str(args["connect_timeout"]))
    # A URL with libpq options of its own keeps them alone: dlt renders the URL for connectorx
    # with spaces as `+`, which connectorx takes literally, so two options cannot travel in it.
    # Set statement_timeout in those options (or on the database role) instead.
    query.setdefault("options", f"-cstatement_timeout={timeouts.pg_statement_ms}")
    base = parsed.set(query={}).render_as_string(hide_password=False)
    # Spaces as %20, not `+`: connectorx (dlt's fast reader) takes `+` literally.
    return f"{base}?{urlencode(query, doseq=True, quote_via=quote)}"


def apply_mlflow_http_timeouts(timeouts: Timeouts | None = None) -> None:
    """MLflow's REST client reads these when it sends a request; an explicit setting wins."""
    timeouts = timeouts or Timeouts.from_env()
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(round(timeouts.mlflow_http_s)))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(timeouts.mlflow_http_retries))
