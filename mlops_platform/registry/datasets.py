"""MLflow datasets for the rows a model was trained and evaluated on, named by where they live:
the warehouse table (`warehouse://features.<spec>`) and the window read from it (no Dagster).

MLflow is imported inside the functions (it costs seconds to import); the source class is built
on first use for the same reason.
"""

from __future__ import annotations

import datetime as dt
from functools import cache
from typing import Any

import pandas as pd

from mlops_platform.model.columns import EVENT_DATE, LABEL

WAREHOUSE_SOURCE_TYPE = "warehouse"


def warehouse_location(warehouse: Any) -> dict[str, str]:
    """Which warehouse holds the table, without credentials: the DuckDB file, or the
    PostgreSQL server and database (user and password left out)."""
    path = getattr(warehouse, "database_path", None)
    if path:
        return {"backend": "duckdb", "database": str(path)}
    url = getattr(warehouse, "url", "")
    if url:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        return {
            "backend": "postgresql",
            "database": f"{parsed.host or ''}:{parsed.port or 5432}/{parsed.database or ''}",
        }
    return {"backend": type(warehouse).__name__, "database": ""}


@cache
def _source_class():
    from mlflow.data.dataset_source import DatasetSource
    from mlflow.data.dataset_source_registry import register_dataset_source

    class WarehouseDatasetSource(DatasetSource):
        """Rows of a warehouse table: `uri` `warehouse://<schema>.<table>`, the window read
        (`where`), and the warehouse that holds it (`backend`, `database`)."""

        def __init__(self, uri: str, where: str = "", backend: str = "", database: str = ""):
            self.uri, self.where, self.backend, self.database = uri, where, backend, database

        @staticmethod
        def _get_source_type() -> str:
            return WAREHOUSE_SOURCE_TYPE

        def load(self, **kwargs):
            raise NotImplementedError("read the table through the platform's warehouse")

        @staticmethod
        def _can_resolve(raw_source: Any) -> bool:
            return isinstance(raw_source, str) and raw_source.startswith("warehouse://")

        @classmethod
        def _resolve(cls, raw_source: str):
            return cls(uri=raw_source)

        def to_dict(self) -> dict[str, str]:
            return {
                "uri": self.uri,
                "where": self.where,
                "backend": self.backend,
                "database": self.database,
            }

        @classmethod
        def from_dict(cls, source_dict: dict) -> WarehouseDatasetSource:
            return cls(
                **{k: str(source_dict.get(k, "")) for k in ("uri", "where", "backend", "database")}
            )

    register_dataset_source(WarehouseDatasetSource)
    return WarehouseDatasetSource


def warehouse_source(
    schema: str, table: str, start: dt.date, end: dt.date, warehouse: Any = None, **location
):
    """The MLflow dataset source for the rows of `<schema>.<table>` between two days, in
    `warehouse` (or at the given `backend`/`database`)."""
    where = f"CAST({EVENT_DATE} AS DATE) BETWEEN DATE '{start}' AND DATE '{end}'"
    if warehouse is not None:
        location = warehouse_location(warehouse)
    return _source_class()(uri=f"warehouse://{schema}.{table}", where=where, **location)


def training_location(run) -> dict[str, str]:
    """Where a training run's rows came from (`backend`, `database`), read from its logged
    training dataset; empty when it has none (a run logged before datasets named tables)."""
    import json

    for item in run.inputs.dataset_inputs if run.inputs else []:
        if item.dataset.source_type == WAREHOUSE_SOURCE_TYPE:
            source = json.loads(item.dataset.source)
            return {k: str(source.get(k, "")) for k in ("backend", "database")}
    return {}


def rows_dataset(frame: pd.DataFrame, name: str, digest: str, source):
    """An `mlflow.data` dataset for labelled rows (`digest`: our SHA-256 of the exact rows).

    MLflow infers a dataset's schema with a Python pass over every value (~5 s for 150k rows
    here); types are the same on a sample and null checks vectorise, so the schema is built
    that way. The digest is the first 32 hex digits of our SHA-256 of the exact rows.
    """
    from functools import cached_property

    from mlflow.data.pandas_dataset import PandasDataset
    from mlflow.types.schema import ColSpec, Schema
    from mlflow.types.utils import _infer_schema

    class LabelledRows(PandasDataset):
        @cached_property
        def schema(self) -> Schema:
            sample = _infer_schema(self._df.head(5_000))
            nulls = self._df.isna().any()
            return Schema(
                [ColSpec(c.type, c.name, required=not bool(nulls[c.name])) for c in sample.inputs]
            )

    return LabelledRows(df=frame, source=source, targets=LABEL, name=name, digest=digest[:32])
