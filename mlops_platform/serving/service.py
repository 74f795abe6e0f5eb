"""The route-independent part of a scoring request: parse, check, score.

Every route goes through `Scoring.prepare` (parse and `normalize`, so the value policy is the
same everywhere) and `Scoring.score`. Bodies larger than `OFFLOAD_BYTES` are parsed on a worker
thread, so a large request never holds the event loop while small ones wait. One thread, not
asyncio's pool: parsing holds the GIL throughout, so parallel parses only took turns with it
(and with the event loop) at the cost of a thread switch each time.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from mlops_platform.model.input import InputError, Normalizer
from mlops_platform.serving.batcher import MicroBatcher, Scored
from mlops_platform.serving.manager import ModelManager
from mlops_platform.serving.metrics import ServingMetrics
from mlops_platform.serving.protocols import loads, parse_csv, parse_mlflow_json, parse_oip
from mlops_platform.serving.settings import ServingSettings
from mlops_platform.specs import ModelSpec

#: Bodies from this size on are parsed off the event loop (a single row is ~600 bytes).
OFFLOAD_BYTES = 64_000


class NotReady(RuntimeError):
    """No verified champion (or not the version asked for): 503 or 404."""

    def __init__(self, message: str, status: int = 503) -> None:
        super().__init__(message)
        self.status = status


class ShuttingDown(NotReady):
    """The service is stopping (`Scoring.close` ran): 503, the client retries elsewhere or
    later. Not a 500: nothing is wrong with the request."""

    def __init__(self) -> None:
        super().__init__("the service is shutting down; retry the request", 503)


@dataclass
class Prepared:
    columns: dict[str, list]
    rows: int
    payload: object = None


class Scoring:
    def __init__(
        self,
        spec: ModelSpec,
        settings: ServingSettings,
        manager: ModelManager,
        batcher: MicroBatcher,
        metrics: ServingMetrics,
        ranges: dict[str, tuple[float, float]],
    ) -> None:
        self.spec, self.settings, self.manager = spec, settings, manager
        self.batcher, self.metrics, self.ranges = batcher, metrics, ranges
        self.wanted = list(spec.features.columns)
        self.normalize = Normalizer(spec, ranges)
        self._parse_thread = ThreadPoolExecutor(1, thread_name_prefix="parse")
        self.closed = False

    def ready(self) -> bool:
        return self.manager.champion is not None

    def _normalize(
        self, columns: dict, rows: int, route: str, booleans: bool = True
    ) -> dict[str, list]:
        try:
            return self.normalize(columns, rows, booleans)
        except InputError:
            self.metrics.rejected_values.labels(route).inc()
            raise

    def _parse(self, kind: str, body: bytes, route: str) -> Prepared:
        limit = self.settings.max_request_rows
        if kind == "csv":
            columns, rows = parse_csv(body, self.wanted, limit)
            payload, booleans = None, False  # text only
        else:
            payload = loads(body)
            parse = parse_oip if kind == "oip" else parse_mlflow_json
            columns, rows = parse(payload, self.wanted, limit)
            # JSON booleans are the tokens true and false: a body without either holds none
            # (searched in C; one in a string only costs the type check it spares)
            booleans = b"true" in body or b"false" in body
        # Only OIP answers need the payload (its `id`); dropped here, a large body's rows are
        # freed on this (parse) thread rather than on the event loop after the reply (perf:
        # 6% of a 1,000-row request's CPU, all on the event loop).
        return Prepared(
            self._normalize(columns, rows, route, booleans),
            rows,
            payload if kind == "oip" else None,
        )

    async def prepare(self, kind: str, body: bytes, route: str) -> Prepared:
        """Parse and check a body ("csv", "mlflow" or "oip"); raises ProtocolError/InputError,
        or ShuttingDown once `close` ran."""
        if self.closed:
            raise ShuttingDown()
        if len(body) >= OFFLOAD_BYTES:
            loop = asyncio.get_running_loop()
            try:
                return await loop.run_in_executor(
                    self._parse_thread, self._parse, kind, body, route
                )
            except RuntimeError:
                # the pool refuses new work once shut down (closed from another thread)
                if self.closed:
                    raise ShuttingDown() from None
                raise
        return self._parse(kind, body, route)

    def close(self) -> None:
        """Refuse new requests (503, `ShuttingDown`) and wait for the parses under way. Called
        before the batcher drains: what reaches the batcher after this would never be scored."""
        self.closed = True
        self._parse_thread.shutdown(wait=True)

    def prepare_columns(self, columns: dict, rows: int, route: str) -> Prepared:
        if self.closed:
            raise ShuttingDown()
        return Prepared(self._normalize(columns, rows, route), rows)

    async def score(
        self, prepared: Prepared, request_id: str, route: str, version: str | None = None
    ) -> Scored:
        """Score on the champion (or, by `version`, on whichever served model has it)."""
        if self.closed:
            raise ShuttingDown()
        champion, challenger = self.manager.champion, self.manager.challenger
        if champion is None:
            raise NotReady("no verified champion loaded yet")
        use_challenger = None
        if version is not None:
            if version == champion.version:
                use_challenger = False
            elif challenger is not None and version == challenger.version:
                use_challenger = True
            else:
                raise NotReady(f"version {version!r} is not being served", 404)
        return await self.batcher.score(
            prepared.columns, prepared.rows, request_id, route, use_challenger
        )
