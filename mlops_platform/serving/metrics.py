"""Prometheus metrics of the service (its own registry, served at /metrics).

The request path touches them once per request (`RequestMetrics`: label children looked up
once, not per request) and once per model call (`ScoreHistogram`: every score of a batch
counted in one numpy call, not one `observe` per row).
"""

from __future__ import annotations

import threading

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.utils import floatToGoString

SCORE_BUCKETS = tuple(i / 10 for i in range(1, 11))


class ScoreHistogram:
    """A Prometheus histogram by alias, fed a whole batch of scores at a time."""

    def __init__(self, name: str, documentation: str, bounds, registry) -> None:
        self.name, self.documentation = name, documentation
        self.bounds = np.asarray(bounds, dtype=np.float64)
        self._counts: dict[str, np.ndarray] = {}
        self._sums: dict[str, float] = {}
        self._lock = threading.Lock()
        registry.register(self)

    def observe_many(self, alias: str, values: np.ndarray) -> None:
        # bucket i counts values <= bounds[i] ("le"); the last one is +Inf
        index = np.searchsorted(self.bounds, values, side="left")
        counts = np.bincount(index, minlength=len(self.bounds) + 1)
        with self._lock:
            if alias in self._counts:
                self._counts[alias] += counts
                self._sums[alias] += float(np.sum(values))
            else:
                self._counts[alias] = counts
                self._sums[alias] = float(np.sum(values))

    def collect(self):
        family = HistogramMetricFamily(self.name, self.documentation, labels=["alias"])
        with self._lock:
            for alias, counts in self._counts.items():
                cumulative = np.cumsum(counts).tolist()
                bounds = [floatToGoString(b) for b in self.bounds]
                buckets = list(zip(bounds, cumulative, strict=False))
                buckets.append(("+Inf", cumulative[-1]))
                family.add_metric([alias], buckets, self._sums[alias])
        yield family

    def describe(self):
        return [HistogramMetricFamily(self.name, self.documentation, labels=["alias"])]


class ServingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Request duration",
            ["route", "method", "status"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.requests = Counter(
            "http_requests_total", "Requests", ["route", "method", "status"], registry=self.registry
        )
        self.errors = Counter(
            "http_request_errors_total",
            "Requests answered 4xx/5xx",
            ["route", "status"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "http_requests_in_flight", "Requests being served", registry=self.registry
        )
        self.batch_rows = Histogram(
            "model_batch_rows",
            "Rows per model call",
            ["alias"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=self.registry,
        )
        self.model_version = Gauge(
            "model_version_info",
            "Model version in use (value 1)",
            ["model", "alias", "version"],
            registry=self.registry,
        )
        self.scores = ScoreHistogram(
            "prediction_score",
            "Distribution of predicted scores",
            SCORE_BUCKETS,
            self.registry,
        )
        self.shadow_dropped = Counter(
            "shadow_dropped_rows_total",
            "Rows not shadow-scored because the queue was full",
            registry=self.registry,
        )
        self.refused = Counter(
            "model_refused_total",
            "Model versions an alias pointed to that failed verification (never served)",
            ["alias", "version"],
            registry=self.registry,
        )

        self.log_dropped = Counter(
            "log_records_dropped_total",
            "Log records that could not be stored (dropped, never retried)",
            ["log"],
            registry=self.registry,
        )
        self.rejected_values = Counter(
            "rejected_values_total",
            "Requests refused for a value outside the policy (infinite, out of declared range)",
            ["route"],
            registry=self.registry,
        )
        self.registry_circuit_open = Gauge(
            "registry_circuit_open",
            "1 while calls to the model registry are suspended by the circuit breaker",
            registry=self.registry,
        )

    def set_models(self, handles) -> None:
        self.model_version.clear()
        for handle in handles:
            if handle is not None:
                self.model_version.labels(handle.name, handle.alias, handle.version).set(1)


class RequestMetrics:
    """Duration, count and errors of a request by (route, method, status), children cached."""

    def __init__(self, metrics: ServingMetrics) -> None:
        self.metrics = metrics
        self._children: dict[tuple[str, str, int], tuple] = {}

    def record(self, route: str, method: str, status: int, seconds: float) -> None:
        children = self._children.get((route, method, status))
        if children is None:
            m, code = self.metrics, str(status)
            children = (
                m.duration.labels(route, method, code),
                m.requests.labels(route, method, code),
                m.errors.labels(route, code) if status >= 400 else None,
            )
            if len(self._children) < 10_000:  # bounded: routes and statuses are few
                self._children[(route, method, status)] = children
        duration, requests, errors = children
        duration.observe(seconds)
        requests.inc()
        if errors is not None:
            errors.inc()
