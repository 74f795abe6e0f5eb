"""The interface every warehouse implementation offers, as plain Python (no Dagster): the
serving API and the CLI use it as is; `warehouse/resources.py` makes Dagster resources of it."""

from __future__ import annotations

import contextlib
import copy
import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, Field

from mlops_platform.settings import data_dir

if TYPE_CHECKING:
    import pandas as pd


#: dlt pipelines made in this process (`WarehouseStore.dlt_pipeline`).
_PIPELINES: dict[tuple, Any] = {}


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


#: A table's column names in order (information_schema: both warehouses answer it).
COLUMNS_SQL = (
    "SELECT column_name FROM information_schema.columns "
    "WHERE table_schema = :schema AND table_name = :table ORDER BY ordinal_position"
)


class WarehouseStore(BaseModel):
    """Tables in named schemas (`raw`, `quarantine`, ...), read and written as DataFrames."""

    pipelines_dir: str = Field(
        default="",
        description="Where dlt keeps its local working state (default: <data dir>/dlt).",
    )

    # -- dlt -------------------------------------------------------------------------------
    #: The file format dlt loads with: the fastest bulk path the destination has.
    loader_file_format: ClassVar[str] = "insert_values"
    #: Whether a landed batch is audited in the warehouse itself (contracts/warehouse_audit.py).
    sql_audit: ClassVar[bool] = False

    def dlt_destination(self) -> Any:
        raise NotImplementedError

    def dlt_pipeline(self, name: str, dataset_name: str = "raw") -> Any:
        """A dlt pipeline loading into `dataset_name` of this warehouse.

        One pipeline object per process for each warehouse, name and dataset, kept while its
        working directory exists: dlt syncs a pipeline's state and schemas with the destination
        on its first run only, and building the pipeline restores its local state and schemas
        (together a third of the landing step at every run of a day's increment; the replay
        runs every day in one process). Runs still build a fresh source each time."""
        import dlt

        _answer_secret_hints_from_cache()
        # Arrow loads (the connectorx backend) stamp `_dlt_load_id` on rows only when asked;
        # incremental feature builds read it to find what changed.
        dlt.config["normalize.parquet_normalizer.add_dlt_load_id"] = True
        # Every landed row needs its own id (the audit names the rows it publishes by it): the
        # SQL sources add it to their Arrow batches at extraction (ingestion/sources.py), so
        # normalize loads their Parquet files as extracted instead of rewriting them.
        dlt.config["normalize.parquet_normalizer.add_dlt_id"] = False
        pipelines_dir = self.pipelines_dir or str(data_dir() / "dlt")
        key = (type(self).__name__, self.model_dump_json(), pipelines_dir, name, dataset_name)
        known = _PIPELINES.get(key)
        if known is not None and Path(known.working_dir).is_dir():
            return known
        Path(pipelines_dir).mkdir(parents=True, exist_ok=True)
        pipeline = dlt.pipeline(
            pipeline_name=name,
            destination=_with_cached_capabilities(self.dlt_destination()),
            dataset_name=dataset_name,
            pipelines_dir=pipelines_dir,
        )
        # Nothing of dlt's state is the platform's to restore: each table's cursor is kept in
        # the warehouse (ingestion/cursors.py), and the destination's columns are read when a
        # load migrates a table. Restoring is what makes dagster-dlt drop the pipeline's local
        # state before every run, and dlt then read its state and schemas back from the
        # destination (a third of the landing step of a day's increment, py-spy); without it
        # dagster-dlt drops only pending packages, and dlt stores no state in the destination.
        pipeline.config.restore_from_destination = False
        _PIPELINES[key] = pipeline
        return pipeline

    # -- SQL -------------------------------------------------------------------------------
    def query(self, sql: str, params: dict | None = None) -> pd.DataFrame:
        raise NotImplementedError

    def execute(self, sql: str, params: dict | None = None) -> None:
        raise NotImplementedError

    def table_exists(self, schema: str, table: str) -> bool:
        found = self.query(
            "SELECT count(*) AS n FROM information_schema.tables "
            "WHERE table_schema = :schema AND table_name = :table",
            {"schema": schema, "table": table},
        )
        return int(found["n"].iloc[0]) > 0

    def columns(self, schema: str, table: str) -> list[str]:
        found = self.query(COLUMNS_SQL, {"schema": schema, "table": table})
        return list(found["column_name"])

    def read_table(self, schema: str, table: str, where: str = "") -> pd.DataFrame:
        sql = f"SELECT * FROM {quote(schema)}.{quote(table)}"
        return self.query(sql + (f" WHERE {where}" if where else ""))

    def append(self, schema: str, table: str, frame: pd.DataFrame) -> int:
        """Append rows, creating the table (and adding new columns) as needed."""
        raise NotImplementedError

    def replace_table(self, schema: str, table: str, frame: pd.DataFrame) -> int:
        """Replace a table's whole content (and shape) with `frame`, atomically."""
        raise NotImplementedError

    def replace_rows(self, schema: str, table: str, frame: pd.DataFrame, where: str) -> int:
        """In one transaction, delete the rows matching `where` and append `frame`.

        Returns how many rows were deleted. Creates the table from `frame` if needed."""
        raise NotImplementedError

    def ensure_index(self, schema: str, table: str, column: str) -> None:
        """An index on `column` where the warehouse needs one to read a range without scanning
        the whole table (PostgreSQL); DuckDB prunes by its min/max zone maps and needs none."""

    def delete_matching(
        self, schema: str, table: str, keys: pd.DataFrame, key_columns: list[str]
    ) -> int:
        """Delete the rows whose key columns match a row of `keys` (NULLs match NULLs)."""
        raise NotImplementedError

    def rows_without_key(
        self, schema: str, table: str, keys: Any, key_columns: list[str]
    ) -> pd.DataFrame:
        """Rows of the table whose key matches no row of `keys` (a pandas frame or an Arrow
        table; NULLs match NULLs); `keys` takes the stored columns' types where it can. Empty
        when the table does not exist."""
        import pandas as pd

        if not self.table_exists(schema, table):
            return pd.DataFrame(columns=key_columns)
        if not isinstance(keys, pd.DataFrame):
            keys = keys.to_pandas()
        target = f"{quote(schema)}.{quote(table)}"
        stored = self.query(f"SELECT {', '.join(quote(c) for c in key_columns)} FROM {target}")
        keys = keys[key_columns].astype(stored.dtypes.to_dict(), errors="ignore")
        merged = stored.merge(keys.drop_duplicates(), on=key_columns, how="left", indicator=True)
        gone = merged.loc[merged["_merge"] == "left_only", key_columns]
        if gone.empty:
            return gone
        match = " AND ".join(f"r.{quote(c)} IS NOT DISTINCT FROM g.{quote(c)}" for c in key_columns)
        with self.transaction() as tx:
            tx.put_frame("_gone_keys", gone)
            return tx.query(
                f"SELECT r.* FROM {target} r "
                f"WHERE EXISTS (SELECT 1 FROM _gone_keys g WHERE {match})"
            )

    def transaction(self) -> contextlib.AbstractContextManager[Transaction]:
        """One connection in one transaction: everything done through it commits together or
        not at all (a crash or kill before the end leaves the warehouse as it was)."""
        raise NotImplementedError

    def column_types(self, schema: str, table: str) -> dict[str, str]:
        found = self.query(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = :schema AND table_name = :table ORDER BY ordinal_position",
            {"schema": schema, "table": table},
        )
        return dict(zip(found["column_name"], found["data_type"], strict=True))


def _with_cached_capabilities(destination: Any) -> Any:
    """`destination` answering its capability checks from a cache.

    dlt asks a destination for its capabilities a dozen times per run (every step, every load
    storage) and each answer resolves the destination's configuration again from the config
    providers (a fifth of the landing step of a day's increment, py-spy). The answer depends
    only on the destination's own settings and the naming convention asked about, both fixed
    for the pipeline's life; a checked configuration passed in is never cached."""
    compute = destination.capabilities
    cache: dict = {}

    def capabilities(config: Any = None, naming: Any = None) -> Any:
        if config is not None:
            return compute(config, naming)
        key = None if naming is None else (type(naming), getattr(naming, "max_length", None))
        if key not in cache:
            cache[key] = compute(None, naming)
        # A copy each time: callers may adjust the context they are given.
        return copy.copy(cache[key])

    destination.capabilities = capabilities
    return destination


#: The modules of dlt (1.31) that call `is_secret_hint` by a name of their own.
_SECRET_HINT_CALLERS = (
    "dlt.common.configuration.specs.base_configuration",
    "dlt.common.configuration.providers.environ",
    "dlt.common.configuration.providers.vault",
    "dlt.common.configuration.resolve",
    "dlt.common.configuration",
)


def _answer_secret_hints_from_cache() -> None:
    """dlt's `is_secret_hint` answered from a cache, in every module that calls it.

    dlt resolves a configuration (each `sql_table` resource's, each file writer's, the
    destination client's: ~20 a landing run) by asking every provider for every field in
    every section, and the environment provider first asks whether the field's type hint is a
    secret, taking the hint apart with `typing` introspection each time: half of the CPU of
    those resolutions (~30 ms of a day's landing; their count and CPU, with and without the
    cache). The answer depends on the hint alone (a type: its `Annotated` markers and what it
    wraps), so it is computed once per hint; an unhashable hint is answered as before. Values
    are still looked up in every provider at every resolution: a setting changed between runs
    is seen. Done once per process; a dlt without the function leaves nothing patched."""
    base = importlib.import_module(_SECRET_HINT_CALLERS[0])
    original = getattr(base, "is_secret_hint", None)
    if original is None or getattr(original, "_platform_cached", False):
        return
    answers: dict[Any, bool] = {}

    def is_secret_hint(hint: Any) -> bool:
        try:
            return answers[hint]
        except KeyError:
            answer = answers[hint] = original(hint)
            return answer
        except TypeError:  # unhashable (e.g. an `Annotated` marker): asked each time
            return original(hint)

    is_secret_hint._platform_cached = True  # type: ignore[attr-defined]
    for name in _SECRET_HINT_CALLERS:
        module = importlib.import_module(name)
        if getattr(module, "is_secret_hint", None) is original:
            module.is_secret_hint = is_secret_hint


class Transaction:
    """What a warehouse transaction offers (DuckDB and PostgreSQL implement it)."""

    def execute(self, sql: str, params: dict | None = None) -> int:
        """Run a statement; returns the affected row count where the database reports one."""
        raise NotImplementedError

    def query(self, sql: str, params: dict | None = None) -> pd.DataFrame:
        raise NotImplementedError

    def columns(self, schema: str, table: str) -> list[str]:
        """A table's column names as this transaction sees them."""
        found = self.query(COLUMNS_SQL, {"schema": schema, "table": table})
        return list(found["column_name"])

    def put_frame(self, name: str, frame: pd.DataFrame) -> None:
        """Make `frame` readable as the temporary table `name` for this transaction."""
        raise NotImplementedError

    def insert_frame(self, schema: str, table: str, frame: pd.DataFrame) -> int:
        """Insert `frame`'s rows into an existing table (columns by name)."""
        raise NotImplementedError
