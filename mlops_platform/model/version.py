"""The record of one model version: what it was trained on and how its gate went.

`VersionRecord` is written on the MLflow model version as tags (`to_tags`) and read back
(`from_tags`) by every later stage: the gate finds its held-out window there, monitoring its
training window and baseline, promotion and the replay its gate outcome. Tag keys: `tags.py`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields, replace

import pandas as pd

from mlops_platform.model import tags as t
from mlops_platform.model.split import TimeSplit


def data_digest(frame: pd.DataFrame) -> str:
    """SHA-256 of the exact rows and columns (order-sensitive), to tie a model to its data."""
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    digest = hashlib.sha256(hashed.tobytes())
    digest.update(",".join(map(str, frame.columns)).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class GateSummary:
    """The gate's verdict on a version, as recorded (and, when it passed, signed)."""

    passed: bool
    challenger: str
    champion: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    champion_metrics: dict[str, float] | None = None
    failed_checks: list[str] = field(default_factory=list)
    latency_ms: dict[str, float] = field(default_factory=dict)
    champion_latency_ms: dict[str, float] | None = None
    latency_rounds: int = 0

    @property
    def status(self) -> str:
        return t.GATE_ACCEPTED if self.passed else t.GATE_REJECTED

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict) -> GateSummary:
        """From a recorded summary; keys it does not know (a person's note when a legacy
        version was signed later) are left out."""
        known = {f.name for f in fields(cls)}
        if "passed" not in data or "challenger" not in data:
            raise ValueError(f"not a gate summary: keys {sorted(data)}")
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_tags(self) -> dict[str, str]:
        return {
            t.GATE_PASSED: str(bool(self.passed)).lower(),
            t.GATE_STATUS: self.status,
            t.GATE_FAILED_CHECKS: ",".join(self.failed_checks),
            t.GATE_SUMMARY: json.dumps(self.to_dict(), sort_keys=True),
        }

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> GateSummary | None:
        """The recorded summary, or None if the version was never gated."""
        raw = tags.get(t.GATE_SUMMARY)
        return cls.from_dict(json.loads(raw)) if raw else None


@dataclass(frozen=True)
class VersionRecord:
    """What a version was trained on (windows, exact data, rows, code, runs), and later its
    gate outcome and approval."""

    split: TimeSplit
    data_digest: str
    train_rows: int
    holdout_rows: int
    mlflow_run_id: str = ""
    dagster_run_id: str = ""
    code_version: str = ""
    shuffle_labels: bool = False
    gate: GateSummary | None = None
    approval: str | None = None
    approved_by: str | None = None

    @property
    def rejected(self) -> bool:
        return self.gate is not None and not self.gate.passed

    def with_gate(self, gate: GateSummary) -> VersionRecord:
        return replace(self, gate=gate)

    def to_tags(self) -> dict[str, str]:
        out = {
            **self.split.to_tags(),
            t.DATA_DIGEST: self.data_digest,
            t.TRAIN_ROWS: str(self.train_rows),
            t.HOLDOUT_ROWS: str(self.holdout_rows),
            t.MLFLOW_RUN_ID: self.mlflow_run_id,
            t.DAGSTER_RUN_ID: self.dagster_run_id,
            t.CODE_VERSION: self.code_version,
            t.SHUFFLE_LABELS: str(self.shuffle_labels).lower(),
        }
        if self.gate is not None:
            out.update(self.gate.to_tags())
        if self.approval is not None:
            out[t.APPROVAL] = self.approval
        if self.approved_by is not None:
            out[t.APPROVED_BY] = self.approved_by
        return out

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> VersionRecord:
        """Raises ValueError naming what is missing when the tags are not a trained version's."""
        missing = [k for k in (t.DATA_DIGEST, t.TRAIN_ROWS, t.HOLDOUT_ROWS) if k not in tags]
        if missing:
            raise ValueError(f"model version has no recorded {', '.join(missing)}")
        return cls(
            split=TimeSplit.from_tags(tags),
            data_digest=tags[t.DATA_DIGEST],
            train_rows=int(tags[t.TRAIN_ROWS]),
            holdout_rows=int(tags[t.HOLDOUT_ROWS]),
            mlflow_run_id=tags.get(t.MLFLOW_RUN_ID, ""),
            dagster_run_id=tags.get(t.DAGSTER_RUN_ID, ""),
            code_version=tags.get(t.CODE_VERSION, ""),
            shuffle_labels=tags.get(t.SHUFFLE_LABELS) == "true",
            gate=GateSummary.from_tags(tags),
            approval=tags.get(t.APPROVAL),
            approved_by=tags.get(t.APPROVED_BY),
        )
