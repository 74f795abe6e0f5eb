"""Prometheus metrics of the service (its own registry, served at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


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
        self.scores = Histogram(
            "prediction_score",
            "Distribution of predicted scores",
            ["alias"],
            buckets=tuple(i / 10 for i in range(1, 11)),
            registry=self.registry,
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
