"""A circuit breaker for calls to an outside system (the model registry).

After `failures` consecutive failures the circuit opens: calls fail at once with `CircuitOpen`
for `reset_seconds` instead of waiting on a system that is down. Then one trial call goes
through (half-open): success closes the circuit, failure opens it again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class CircuitOpen(RuntimeError):
    pass


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        failures: int = 3,
        reset_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.clock = clock
        self.max_failures = failures
        self.reset_seconds = reset_seconds
        self.failures = 0
        self.opened_at: float | None = None
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        if self.clock() - self.opened_at >= self.reset_seconds:
            return "half-open"
        return "open"

    def call(self, function: Callable[..., T], *args, **kwargs) -> T:
        with self._lock:
            if self.state == "open":
                left = self.reset_seconds - (self.clock() - self.opened_at)
                raise CircuitOpen(
                    f"{self.name} circuit open after {self.failures} failures; "
                    f"next try in {left:.0f} s"
                )
        try:
            result = function(*args, **kwargs)
        except Exception:
            with self._lock:
                self.failures += 1
                if self.failures >= self.max_failures:
                    self.opened_at = self.clock()
            raise
        with self._lock:
            self.failures, self.opened_at = 0, None
        return result
