"""Settings of the serving process, read from the environment (see .env.example)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from mlops_platform.settings import data_dir


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


@dataclass
class ServingSettings:
    model: str = field(default_factory=lambda: _env("MLOPS_SERVING_MODEL", "flight_delay"))
    #: Bearer token for /admin routes; empty disables them (every call answers 401).
    admin_token: str = field(default_factory=lambda: _env("MLOPS_ADMIN_TOKEN", ""), repr=False)
    poll_seconds: float = field(
        default_factory=lambda: float(_env("MLOPS_SERVING_POLL_SECONDS", "5"))
    )
    canary_percent: float = field(
        default_factory=lambda: float(_env("MLOPS_SERVING_CANARY_PERCENT", "0"))
    )
    shadow: bool = field(
        default_factory=lambda: _env("MLOPS_SERVING_SHADOW", "true").lower() == "true"
    )
    max_body_bytes: int = field(
        default_factory=lambda: int(_env("MLOPS_SERVING_MAX_BODY_BYTES", "1000000"))
    )
    max_batch_rows: int = field(
        default_factory=lambda: int(_env("MLOPS_SERVING_MAX_BATCH_ROWS", "256"))
    )
    decision_threshold: float = field(
        default_factory=lambda: float(_env("MLOPS_SERVING_DECISION_THRESHOLD", "0.5"))
    )
    log_dir: str = field(
        default_factory=lambda: _env("MLOPS_PREDICTION_LOG_DIR", str(data_dir() / "serving"))
    )
    retry_seconds: float = field(
        default_factory=lambda: float(_env("MLOPS_SERVING_RETRY_SECONDS", "2"))
    )
