"""`<spec>/scores`: batch scores partitioned by the spec's domain (a day or a month), replaced
(never appended) on re-runs."""

import datetime as dt
from collections.abc import Sequence

import dagster as dg

from mlops_platform.asset_keys import FEATURES, SCORES, stage_attributes, stage_key
from mlops_platform.domains import domain_for
from mlops_platform.domains.partitions import PartitionsDefinition, partitions_def
from mlops_platform.model.columns import EVENT_DATE
from mlops_platform.registry.resources import MLflowResource
from mlops_platform.specs import ModelSpec
from mlops_platform.warehouse.pool import WAREHOUSE_POOL
from mlops_platform.warehouse.resources import Warehouse

#: The one backfill policy of every partitioned asset (scores, drift, performance, guard): a
#: job takes one policy for all its assets. A range of partitions is one run (one run process:
#: it imports the code location, several seconds of CPU); `<spec>/scores` fans the range out
#: into steps inside that run (see `chunks`), which is what spreads a backfill over the workers.
BACKFILL = dg.BackfillPolicy.single_run()

#: A scoring step scores at most this many partitions (a week of a day-partitioned domain),
#: reading at most `score.SCORE_ROWS` rows at a time.
MAX_CHUNK_PARTITIONS = 7
#: A range of several partitions is split into at least this many steps (when it has as many
#: partitions), so up to this many Celery workers share it: the production `warehouse` pool's
#: limit (deploy/dagster.yaml).
MIN_CHUNKS = 4


def with_backfill_policy(asset: dg.AssetsDefinition) -> dg.AssetsDefinition:
    """`asset` with the one backfill policy, set on the definition: the `@asset` decorator's
    `backfill_policy` parameter is marked beta (a warning on every load), the policy is not."""
    return asset.with_attributes(backfill_policy=BACKFILL)


def spec_partitions(
    spec: ModelSpec, until: dt.datetime | dt.date | None = None
) -> PartitionsDefinition:
    """The partitions of a spec's scores and monitoring: its domain's (cadence, range,
    timezone), ending at `until`'s last complete period if given (see domains/partitions.py)."""
    return partitions_def(domain_for(spec), until)


def chunks(keys: Sequence[str]) -> list[list[str]]:
    """A run's partition keys, in order, cut into consecutive chunks of near-equal size: at most
    `MAX_CHUNK_PARTITIONS` each, and about `MIN_CHUNKS` of them when there are enough keys
    (5 or 6 keys make 3 chunks of 2; 7 make 4). (A chunk
    is one step; inside it rows are read a few days at a time, `score.SCORE_ROWS`.)"""
    if not keys:
        return []
    size = min(MAX_CHUNK_PARTITIONS, -(-len(keys) // MIN_CHUNKS))
    count = -(-len(keys) // size)
    base, extra = divmod(len(keys), count)
    out, at = [], 0
    for i in range(count):
        step = base + (1 if i < extra else 0)
        out.append(list(keys[at : at + step]))
        at += step
    return out


def chunk_label(keys: Sequence[str]) -> str:
    """A chunk's mapping key, its first and last partition (`2013_01_02__2013_01_08`): the step
    key names its days in the UI, and the step reads its range back from it."""
    return f"{keys[0]}__{keys[-1]}".replace("-", "_")


def chunk_range(label: str) -> tuple[str, str]:
    first, last = label.split("__")
    return first.replace("_", "-"), last.replace("_", "-")


def _verified_model(registry, spec: ModelSpec, version: str):
    """The version's model, verified (signature and digest) on first use in this process and
    kept for the next steps a worker runs. The key holds the version's artifact digest and
    signature tags as the registry has them now: a version number re-used (a model deleted and
    registered again, a registry reset) or re-signed is verified and loaded again. Kept as its
    `FastScorer` (the trees compiled, as serving scores them): the pipeline's numbers at a
    fraction of its CPU a row, which a backfill's chunks share the machine's cores for."""
    from mlops_platform.model.scorer import FastScorer
    from mlops_platform.model.tags import ARTIFACT_SHA256, SIGNATURE

    tags = registry.version_tags(spec.name, version)
    identity = (tags.get(ARTIFACT_SHA256), tags.get(SIGNATURE))
    key = (registry.tracking_uri, spec.name, version, identity)
    if key not in _MODELS:
        _MODELS.clear()  # one version at a time: a promotion does not pile models up
        # The verified pipeline itself is shared with the other steps of this process (the
        # deploy guard, the monitoring references: `ModelRegistry.verified_model`).
        _MODELS[key] = FastScorer(registry.verified_model(spec.name, version), spec)
    return _MODELS[key]


_MODELS: dict[tuple, object] = {}


def build_scores_asset(
    spec: ModelSpec, partitions: PartitionsDefinition | None = None
) -> dg.AssetsDefinition:
    """`<spec>/scores` on `partitions` (default: its domain's, up to Dagster's clock): a graph of
    three steps, `plan` (the run's partitions, cut into `chunks`), one `score` step per chunk
    (dynamic: a backfill's chunks run at once on as many workers as there are), and `summary`
    (the asset's materialization, with what the chunks reported)."""
    partitions = partitions or spec_partitions(spec)
    attributes = stage_attributes(spec, SCORES)
    prefix = spec.name

    @dg.op(
        name=f"{prefix}_plan",
        ins={"features": dg.In(dg.Nothing)},
        out=dg.DynamicOut(dg.Nothing),
        pool=WAREHOUSE_POOL,  # it opens the warehouse (DuckDB: one process at a time)
        description="The run's partitions, cut into chunks of at most "
        f"{MAX_CHUNK_PARTITIONS} (one step each).",
    )
    def plan(context: dg.OpExecutionContext, warehouse: Warehouse, mlflow_registry: MLflowResource):
        from mlops_platform.registry.store import CHAMPION

        # Refuse before fanning out: every chunk would fail the same way.
        if mlflow_registry.registry().alias_version(spec.name, CHAMPION) is None:
            raise RuntimeError(f"{spec.name} has no champion to score with")
        if not warehouse.table_exists("features", spec.name):
            raise RuntimeError(f"features.{spec.name} does not exist: run train_{spec.name}")
        keys = _run_partition_keys(context, partitions)
        for chunk in chunks(keys):
            yield dg.DynamicOutput(None, mapping_key=chunk_label(chunk))

    @dg.op(
        name=f"{prefix}_score",
        ins={"planned": dg.In(dg.Nothing)},
        out=dg.Out(dg.Nothing),
        pool=WAREHOUSE_POOL,  # DuckDB has one writer: chunks run one at a time locally
        description="One chunk of partitions scored by the champion, a few days a read.",
    )
    def score(
        context: dg.OpExecutionContext, warehouse: Warehouse, mlflow_registry: MLflowResource
    ):
        from mlops_platform.registry.store import CHAMPION
        from mlops_platform.scoring.score import score_range

        first_key, last_key = chunk_range(context.get_mapping_key())
        first = partitions.time_window_for_partition_key(first_key).start.date()
        end = partitions.time_window_for_partition_key(last_key).end.date()
        registry = mlflow_registry.registry()
        version = registry.alias_version(spec.name, CHAMPION)
        if version is None:
            raise RuntimeError(f"{spec.name} has no champion to score with")
        model = _verified_model(registry, spec, version)
        # A few days at a time (at most SCORE_ROWS rows a read): memory is flat in the rows.
        rows, replaced = score_range(warehouse, model, version, spec, first, end)
        context.log.info(f"{first}..{end}: {rows} rows scored by v{version}")
        context.add_output_metadata(
            {"rows": rows, "replaced_rows": replaced, "model_version": version}
        )

    @dg.op(
        name=f"{prefix}_summary",
        ins={"scored": dg.In(dg.Nothing)},
        out=dg.Out(dg.Nothing),
        pool=WAREHOUSE_POOL,
        description="The materialization: the range's rows and model versions as its chunks "
        "wrote them (counted in the table when a re-execution ran only some), and what they "
        "replaced.",
    )
    def summary(context: dg.OpExecutionContext, warehouse: Warehouse):
        from mlops_platform.model.columns import MODEL_VERSION

        keys = _run_partition_keys(context, partitions)
        first = partitions.time_window_for_partition_key(keys[0]).start.date()
        end = partitions.time_window_for_partition_key(keys[-1]).end.date()
        reports = _chunk_reports(context, f"{prefix}_score")
        stored = _stored_by_chunks(reports, keys)
        counted_from = "chunks" if stored is not None else "table"
        if stored is None:
            # A run re-executed from a failure runs only the failed chunks: the range's rows
            # are all of them, so they are counted in the table.
            day = EVENT_DATE  # midnights: compared as stored, so its index serves the range
            found = warehouse.query(
                f"SELECT {MODEL_VERSION} AS version, count(*) AS n FROM scores.{spec.name} "
                f"WHERE {day} >= DATE '{first}' AND {day} < DATE '{end}' GROUP BY 1"
            )
            stored = {str(v): int(n) for v, n in zip(found["version"], found["n"], strict=True)}
        versions = sorted(stored, key=_version_order)
        rows = sum(stored.values())
        context.log.info(
            f"{first}..{end}: {rows} rows scored by "
            + (", ".join(f"v{v}" for v in versions) or "no model")
            + f"; {len(reports)} chunk(s) in this run"
        )
        context.add_output_metadata(
            {
                "rows": rows,
                "replaced_rows": sum(int(r["replaced_rows"]) for r in reports.values()),
                "days": (end - first).days,
                "first_day": str(first),
                "last_day": str(end - dt.timedelta(days=1)),
                "model_version": ", ".join(versions),
                "chunks": len(reports),
                "counted_from": counted_from,
                "table": f"scores.{spec.name}",
            }
        )

    @dg.graph_asset(
        **attributes,
        ins={"features": dg.AssetIn(key=stage_key(spec, FEATURES), dagster_type=dg.Nothing)},
        partitions_def=partitions,
        kinds={"duckdb"},
        description=f"Each partition's rows of features.{spec.name} scored by its champion: a "
        f"range (a backfill) is scored in chunks of at most {MAX_CHUNK_PARTITIONS} partitions, "
        "one step each, that the workers share.",
        metadata={"partition_expr": EVENT_DATE},
    )
    def batch_scores(features):
        return summary(plan(features=features).map(lambda p: score(planned=p)).collect())

    return with_backfill_policy(batch_scores)


def _run_partition_keys(context: dg.OpExecutionContext, partitions) -> list[str]:
    """The run's partitions, in order (one for a daily run, the range for a backfill)."""
    window = context.partition_time_window
    return list(partitions.get_partition_keys_in_time_window(window))


def _chunk_reports(context: dg.OpExecutionContext, op_name: str) -> dict[str, dict]:
    """What each `score` step of this run reported (its output's metadata), latest attempt per
    step: a chunk retried on another worker counts once."""
    reports: dict[str, dict] = {}
    records = context.instance.get_records_for_run(
        context.run_id, of_type=dg.DagsterEventType.STEP_OUTPUT
    ).records
    for record in records:
        event = record.event_log_entry.dagster_event
        step = event.step_key or ""
        if f".{op_name}[" not in step:
            continue
        metadata = event.step_output_data.metadata
        reports[step.split("[", 1)[1].rstrip("]")] = {k: v.value for k, v in metadata.items()}
    return reports


def _stored_by_chunks(reports: dict[str, dict], keys: Sequence[str]) -> dict[str, int] | None:
    """The run's range, rows by model version, as its chunks reported them (each replaced its
    days whole, all scored by one version), when this run scored every chunk of the range;
    None when it did not."""
    if set(reports) != {chunk_label(c) for c in chunks(keys)}:
        return None
    stored: dict[str, int] = {}
    for report in reports.values():
        if int(report["rows"]):
            version = str(report["model_version"])
            stored[version] = stored.get(version, 0) + int(report["rows"])
    return stored


def _version_order(version: str) -> tuple:
    return (0, int(version)) if version.isdigit() else (1, version)
