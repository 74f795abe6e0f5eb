"""Runs the replay executes in its own process, created as the daemon creates them.

A run the daemon starts (a sensor's, a schedule's, the Launchpad's) is created from the code
location the workspace loads: it records that location's job origin, and the instance tags it
`.dagster/repository=<repository>@<location>`. The Dagster UI lists a job's runs by that tag,
places runs on the Overview timeline by that origin, and re-executes a run through it.
`execute_in_process` records neither (dagster-io/dagster#17707, #19458), so its runs show under
Runs only.

Launching each replay run through the instance's run launcher would record them too, but the
launcher starts a new process per run that imports the platform again (seconds a run, times
hundreds of replay days; `make bench-runs` measures both). So the replay does here what the
daemon and the run worker do between them, in one process:

1. the origin is that of the workspace's code location (`workspace.yaml`, read by Dagster's
   own loader; nothing is started), the one `make dev` serves;
2. the run is created on the instance from the job definition with that origin, the job's
   Python origin, snapshots and execution plan (`create_run_for_job`, as `execute_in_process`
   does, plus the origin);
3. it is executed with `execute_run`, the function a run worker calls, on the job's own
   in-process executor mode (run config `execution: config: in_process`, shown on the run, and
   kept by a re-execution).

Dagster has no public API for steps 1-3 (the ones above are internal; this module is the only
place that imports them, and tests/test_replay_runs.py fails if one changes).
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from mlops_platform.settings import PROJECT_ROOT

#: The local workspace `make dev` loads, and the module its code location serves.
WORKSPACE = PROJECT_ROOT / "workspace.yaml"
MODULE = "simulator.definitions"

#: Dagster's default executor (no executor set on the definitions: the local profile) runs each
#: step in its own process unless the run config asks for `in_process`.
DEFAULT_EXECUTOR = "multi_or_in_process_executor"
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}


@dataclass(frozen=True)
class CodeLocation:
    """Where runs say they come from: a workspace's code location serving `module`."""

    origin: object  # dagster's CodeLocationOrigin (its own type is internal)
    module: str
    attribute: str
    working_directory: str | None
    repository: str = "__repository__"  # Dagster's name for a `Definitions` object's repository

    @property
    def name(self) -> str:
        return self.origin.location_name

    @property
    def label(self) -> str:
        """The `.dagster/repository` tag value the UI filters a job's runs by."""
        return f"{self.repository}@{self.name}"

    def job_origin(self, job_name: str):
        from dagster._core.remote_origin import RemoteRepositoryOrigin

        return RemoteRepositoryOrigin(self.origin, self.repository).get_job_origin(job_name)

    def python_origin(self, job_name: str):
        from dagster._core.definitions.reconstruct import ReconstructableRepository

        repository = ReconstructableRepository.for_module(
            self.module, self.attribute, self.working_directory
        )
        return repository.get_reconstructable_job(job_name).get_python_origin()


@functools.cache
def workspace_location(workspace: Path = WORKSPACE, module: str = MODULE) -> CodeLocation:
    """The code location of `workspace` that serves `module`, as `dagster dev -w` sees it."""
    from dagster._core.workspace.load import location_origins_from_yaml_paths

    found = []
    for origin in location_origins_from_yaml_paths([str(workspace)]):
        target = getattr(origin, "loadable_target_origin", None)
        if target is not None and target.module_name == module:
            found.append(
                CodeLocation(origin, module, target.attribute or "defs", target.working_directory)
            )
    if len(found) != 1:
        raise RuntimeError(
            f"{workspace} must load module {module!r} in exactly one code location "
            f"(found {len(found)})"
        )
    return found[0]


def run_config_for(job: dg.JobDefinition, run_config: Mapping | None) -> dict:
    """`run_config` with the in-process executor mode when the job's executor offers it."""
    config = dict(run_config or {})
    if job.executor_def.name == DEFAULT_EXECUTOR and "execution" not in config:
        config.update(IN_PROCESS)
    return config


def execute_with_origin(
    job: dg.JobDefinition,
    instance: dg.DagsterInstance,
    location: CodeLocation,
    *,
    partition_key: str | None = None,
    tags: Mapping[str, str] | None = None,
    run_config: Mapping | None = None,
    run_id: str | None = None,
):
    """Create a run of `job` from `location` on `instance` (as the daemon would) and execute it
    here; returns the run's `JobExecutionResult`. A failed step fails the run, it does not
    raise. `run_id`: the new run's id (default: a fresh one)."""
    from dagster._core.definitions.job_base import InMemoryJob
    from dagster._core.execution.api import execute_run
    from dagster._core.execution.execute_in_process import merge_run_tags

    config = run_config_for(job, run_config)
    if partition_key and job.partitioned_config:  # a partitioned job's own config, then ours
        config = {
            **job.partitioned_config.get_run_config_for_partition_key(partition_key),
            **config,
        }
    run_tags = merge_run_tags(
        job_def=job,
        partition_key=partition_key,  # validated: a key outside the partitions raises
        tags=tags,
        asset_selection=None,
        instance=instance,
        run_config=config,
    )
    run = instance.create_run_for_job(
        job_def=job,
        run_id=run_id,
        run_config=config,
        tags=run_tags,
        remote_job_origin=location.job_origin(job.name),
        job_code_origin=location.python_origin(job.name),
    )
    return execute_run(InMemoryJob(job), run, instance, raise_on_error=False)


class SqliteAnchors:
    """One idle connection held open on each SQLite file of a local instance while the replay
    writes to it: the run index (`runs.db`) and the event index (`index.db`) from the first
    run until `close` (the replay's end), the shard of a run while it is executed.

    Dagster's SQLite storages open and close a connection for every event they store (about
    150 a daily run). The files are in WAL mode, and closing the last connection to a WAL
    database checkpoints it and deletes the WAL: two more fsyncs per event, a third of each
    write's cost, plus the connection's setup (`make bench-runs`-style microbench: 21.7 ms vs
    7.2 ms an event at load 10). With one more connection open, a close is never the last:
    commits stay as durable as before (fsynced), and SQLite checkpoints every 1,000 pages
    instead. Nothing is read through these connections; an instance on another storage
    (PostgreSQL) has no files and nothing is held.

    While a run executes, the connections Dagster opens on these files also commit with
    `synchronous=NORMAL` (SQLite's recommended setting for WAL): a commit appends to the WAL
    without waiting for the disk (an fsync per event, 0.3 ms on an idle disk and tens of ms
    when other processes write: 1.7 s of a replay day's 12 s in a py-spy profile at load 11);
    the WAL is fsynced at each checkpoint. Nothing is lost when the process dies (the
    operating system has the writes); a power cut or a kernel crash can lose the last commits,
    never corrupt the files, and the replay resumes from the run history it finds. The
    daemon, the UI and the run workers keep Dagster's own setting.

    A run's shard is a copy of an empty shard the event storage initialised itself, once per
    replay (its tables, WAL mode and Alembic stamp): Dagster otherwise creates the tables and
    stamps the revision of every new shard through Alembic, which loads its migration scripts
    each time (2% of a replay day's CPU profile)."""

    def __init__(self, instance: dg.DagsterInstance):
        from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
            INDEX_SHARD_NAME,
            SqliteEventLogStorage,
        )
        from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage

        self._instance = instance
        self._events = instance.event_log_storage
        if not isinstance(self._events, SqliteEventLogStorage):
            self._events = None
        self._template: tempfile.TemporaryDirectory | None = None  # the empty shard's folder
        self._shared: list[str] = []
        #: The connections held on `_shared` (by path), from the first run that finds the file
        #: until `close`.
        self._held: dict[str, object] = {}
        if self._events is not None:
            self._shared.append(self._events.path_for_shard(INDEX_SHARD_NAME))
        runs = instance.run_storage
        if isinstance(runs, SqliteRunStorage):
            from urllib.parse import urlparse

            self._shared.append(urlparse(runs._conn_string).path)  # noqa: SLF001

    @staticmethod
    def _hold(path: str):
        """An idle connection to the WAL database at `path`, or None (no such file, or not in
        WAL mode)."""
        import sqlite3

        if not Path(path).is_file():
            return None
        conn = sqlite3.connect(path)
        # Only a database in WAL mode (Dagster's own setting) is held; the read makes the
        # connection a WAL reader, which is what keeps the others' closes from checkpointing.
        # (fetchall: each statement runs to its end, so no read transaction stays open that
        # would hold checkpoints back.)
        mode = conn.execute("PRAGMA journal_mode")
        if mode.fetchall()[0][0].lower() != "wal":
            conn.close()
            return None
        conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
        return conn

    @contextlib.contextmanager
    def run(self) -> Iterator[str]:
        """A new run's id; the instance's files and that run's shard (a copy of the empty
        shard, `_new_shard`) are held while the block creates and executes the run. The shard
        is let go after it (the last close checkpoints it: a finished run's shard is one file);
        the run and event indexes stay held until `close`. Each run changes the same pages of
        the indexes (the tables' last pages, their indexes, the pool slots): checkpointing
        them after every run wrote those pages again each time, and each next open rebuilt
        the WAL's index (~70 ms of CPU a daily run, cProfile at load 6); held, SQLite
        checkpoints them every 1,000 pages of WAL, and nothing in between waits for it (the
        held connection reads nothing, so no snapshot holds a checkpoint back). A shard no
        run was created for and nothing was written to is removed. (The held indexes' WAL is
        synced at those checkpoints and at `close`: an OS crash, not a killed process, can lose
        more of the latest runs' records than before; acceptable for a replay.)"""
        from dagster._core.utils import make_new_run_id

        run_id = make_new_run_id()
        for path in self._shared:
            if self._held.get(path) is None:
                self._held[path] = self._hold(path)
        held = [self._held[path] for path in self._shared]
        shard = self._events.path_for_shard(run_id) if self._events is not None else None
        own = None  # the connection held on the run's shard
        if shard is not None:
            self._new_shard(run_id, shard)
            own = self._hold(shard)
            held.append(own)
        paths = [*self._shared, *([shard] if shard is not None else [])]
        files = {str(Path(p).resolve()) for p, conn in zip(paths, held, strict=True) if conn}
        try:
            with self._commits_without_fsync(files), self._engines_reused():
                yield run_id
        finally:
            unused = (
                own is not None and not self._has_events(own) and not self._instance.has_run(run_id)
            )
            if own is not None:
                own.close()
            if unused:  # the run was never created (a refused partition key): no empty shard
                for suffix in ("", "-wal", "-shm"):
                    Path(shard + suffix).unlink(missing_ok=True)

    def close(self) -> None:
        """Let go of the run index and the event index (the last close checkpoints each)."""
        held, self._held = self._held, {}
        for conn in held.values():
            if conn is not None:
                conn.close()

    def _new_shard(self, run_id: str, shard: str) -> None:
        """The run's shard, a copy of the empty shard the event storage initialised (made on
        the first run); the storage is told it is initialised, as after its own `_initdb`."""
        if self._template is None:
            from sqlalchemy import create_engine
            from sqlalchemy.pool import NullPool

            folder = tempfile.TemporaryDirectory(prefix="replay-shard-")
            empty = Path(folder.name) / "empty.db"
            engine = create_engine(f"sqlite:///{empty}", poolclass=NullPool)
            self._events._initdb(engine)  # noqa: SLF001 - the storage's own initialisation
            engine.dispose()  # the last close checkpoints: the file alone holds everything
            self._template = folder
        shutil.copyfile(Path(self._template.name) / "empty.db", shard)
        self._events._initialized_dbs.add(run_id)  # noqa: SLF001 - see `_connect`

    @staticmethod
    @contextlib.contextmanager
    def _commits_without_fsync(files: set[str]) -> Iterator[None]:
        """SQLAlchemy connections opened in the block on one of `files` (held, so in WAL mode)
        commit with `synchronous=NORMAL`."""
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        # Dagster opens a connection per event on the same few paths: each is resolved once
        # (resolving on every connection was 0.5% of a replay day's profile).
        held: dict[str, bool] = {}

        def on_connect(dbapi_connection, _record) -> None:
            import sqlite3

            if not isinstance(dbapi_connection, sqlite3.Connection):
                return
            main = dbapi_connection.execute("PRAGMA database_list").fetchall()[0][2]
            if main and main not in held:
                held[main] = str(Path(main).resolve()) in files
            if main and held[main]:
                dbapi_connection.execute("PRAGMA synchronous=NORMAL")

        if not files:
            yield
            return
        event.listen(Engine, "connect", on_connect)
        try:
            yield
        finally:
            event.remove(Engine, "connect", on_connect)

    @staticmethod
    @contextlib.contextmanager
    def _engines_reused() -> Iterator[None]:
        """Dagster's SQLite run and event storages build a SQLAlchemy engine for every
        statement they run (`create_engine` with `NullPool`, the dialect's set-up on its first
        connection, a new SQLite connection, `dispose`): an event written, a pool slot claimed
        or freed, an asset or check planned. In the block, each file's engine is built once,
        with a pool that keeps its connections open, and the storages' `dispose` after each
        statement leaves them open; they are closed when the block ends. Each statement still
        runs in its own transaction, committed (with the `synchronous` setting above) before
        the storage returns; an idle pooled connection holds no lock (WAL readers see every
        commit), and the event storage uses one connection at a time (its own lock). A
        replay day's profile spent 23% of its time in those storages' writes; an engine cost
        ~1.3 ms of CPU of each ~3.8 ms write (microbench, load 13), and opening, setting up and
        closing a connection a further 5.4% of the day's samples (py-spy)."""
        from dagster._core.storage.event_log.sqlite import sqlite_event_log
        from dagster._core.storage.runs.sqlite import sqlite_run_storage
        from sqlalchemy.engine import Engine
        from sqlalchemy.pool import NullPool, QueuePool

        modules = (sqlite_event_log, sqlite_run_storage)
        originals = [module.create_engine for module in modules]
        engines: dict[tuple[str, str], Engine] = {}

        def reused(build):
            def create_engine(url, **kwargs):
                key = (str(url), repr(sorted(kwargs.items())))
                if key not in engines:
                    if kwargs.get("poolclass") is NullPool:
                        kwargs = {**kwargs, "poolclass": QueuePool}
                    engine = build(url, **kwargs)
                    engine.dispose = lambda close=True: None  # the block's end disposes
                    engines[key] = engine
                return engines[key]

            return create_engine

        for module, build in zip(modules, originals, strict=True):
            module.create_engine = reused(build)
        try:
            yield
        finally:
            for module, build in zip(modules, originals, strict=True):
                module.create_engine = build
            for engine in engines.values():
                Engine.dispose(engine)

    @staticmethod
    def _has_events(conn) -> bool:
        return bool(conn.execute("SELECT 1 FROM event_logs LIMIT 1").fetchall())
