"""Resources for the systems ingestion reads from, one per source a domain declares: a SQL
database (`SourceDatabase`) or an HTTP feed (`SourceFeed`). `source_resources` builds a domain's,
keyed as its declaration says (`sources.<name>.resource`)."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator

import dagster as dg
from pydantic import Field

from mlops_platform.domains import Domain
from mlops_platform.domains.schema import RestSource, SqlSource
from mlops_platform.settings import default_source_url


class SourceDatabase(dg.ConfigurableResource):
    """A source database (SQLite by default, any SQLAlchemy URL) and its replay clock."""

    url: str = Field(default="", description="SQLAlchemy URL; empty means the local file")
    default_file: str = Field(
        default="", description="SQLite file under the data dir used when no URL is set"
    )

    @property
    def database_url(self) -> str:
        from mlops_platform.reliability import with_pg_timeouts

        if self.url:
            # Every reader (dlt, connectorx, the clock) gets bounded connect and statement times.
            return with_pg_timeouts(self.url)
        if not self.default_file:
            raise ValueError("a source database needs a URL or a default file")
        return default_source_url(self.default_file)

    def table_keys(self, table: str, columns: list[str]):
        """Every key of a source table (to find rows deleted at the source): an Arrow table
        when connectorx reads it (times in UTC, as landed), else a pandas frame."""
        import pandas as pd
        import sqlalchemy as sa

        names = ", ".join(f'"{c}"' for c in columns)
        query = f"SELECT {names} FROM {table}"
        url = sa.make_url(self.database_url)
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            import connectorx as cx

            from mlops_platform.ingestion.sources import _url_path

            # Straight into Arrow: SQLAlchemy rows cost ~7x the CPU (every publish reads every
            # key of the table). A key cell of another type makes connectorx refuse the read;
            # SQLAlchemy below reads it as it is (the contract judges the row).
            try:
                found = cx.read_sql(
                    "sqlite://" + _url_path(url.database), query, return_type="arrow"
                )
            except Exception:  # noqa: BLE001 - the slower reader below gives the answer
                pass
            else:
                from mlops_platform.ingestion.sources import _as_landed

                # Kept in Arrow: DuckDB scans it in place, where a pandas frame's strings are
                # Python objects converted one by one (most of the deleted-key check's CPU).
                return _as_landed(found, audit_columns=False)
        engine = sa.create_engine(self.database_url)
        try:
            with engine.connect() as conn:
                return pd.read_sql_query(sa.text(query), conn)
        finally:
            engine.dispose()


class SourceFeed(dg.ConfigurableResource):
    """An HTTP feed; with no URL, the declared local server is run on loopback over
    `source_system` (a stand-in for the real feed), once per process."""

    url: str = Field(default="", description="Base URL of the feed; empty runs it on 127.0.0.1")
    local_server: str = Field(
        default="", description="module:attribute of the loopback server run when no URL is set"
    )
    source_system: SourceDatabase | None = None

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        """Yield the base URL to read from: `url`, else the local server's over
        `source_system`, started by the first run of this process that reads it and kept
        running for the process's later runs (`http_server.shared_server`)."""
        if self.url:
            yield self.url
            return
        if not self.local_server or self.source_system is None:
            raise ValueError("the feed has no URL and no local server to start")
        from mlops_platform.http_server import shared_server

        module, _, attribute = self.local_server.partition(":")
        server_class = getattr(importlib.import_module(module), attribute)
        database_url = self.source_system.database_url
        server = shared_server(
            (self.local_server, database_url), lambda: server_class(database_url)
        )
        yield server.url


def source_resources(
    domain: Domain, production: bool = False, urls: dict[str, str] | None = None
) -> dict:
    """{resource key: resource} for every source the domain declares. In production each URL
    comes from its declared environment variable (read when a run starts); `urls` sets some
    by source name (tests, tools)."""
    databases: dict[str, SourceDatabase] = {}
    found: dict = {}
    urls = urls or {}
    for name, source in domain.sources.items():
        if isinstance(source, SqlSource):
            url = dg.EnvVar(source.url_env) if production else urls.get(name, "")
            databases[name] = SourceDatabase(url=url, default_file=source.default_file)
            found[source.resource] = databases[name]
    for name, source in domain.sources.items():
        if isinstance(source, RestSource):
            reads = databases.get(source.local_server_reads or "")
            found[source.resource] = SourceFeed(
                url=dg.EnvVar(source.url_env) if production else urls.get(name, ""),
                local_server=source.local_server or "",
                source_system=reads,
            )
    return found
