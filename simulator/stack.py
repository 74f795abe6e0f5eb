"""`python -m simulator.stack up|down|status`: the production stack on this machine, fed by the
simulator (`make prod-up`).

The platform's stack (`mlops_platform.deploy.stack`) brings no source system: a team points it
at its own. Here the simulator is that source: this creates the flight-ops replay database in
the warehouse server's `source_system` schema (once), then starts the stack, whose Procfile runs
the replay weather feed as a process of its own (`simulator weather-feed`).
"""

from __future__ import annotations

import sys

from mlops_platform.deploy import stack as deploy_stack
from mlops_platform.deploy.config import StackConfig, from_environment

SOURCE_SCHEMA = "source_system"  # the search_path of `mlops_source_url` (deploy/config.py)


def create_source(config: StackConfig) -> None:
    """The replay source system, once (in the warehouse database's `source_system` schema)."""
    import sqlalchemy as sa

    from simulator.flights import replay

    engine = sa.create_engine(config.mlops_warehouse_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{SOURCE_SCHEMA}"'))
        ready = conn.execute(
            sa.text("SELECT count(*) FROM information_schema.tables WHERE table_schema = :s"),
            {"s": SOURCE_SCHEMA},
        ).scalar()
    engine.dispose()
    if not ready:
        replay.create_source(config.mlops_source_url)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["up"]:
        config = from_environment()
        deploy_stack.create_databases(config)
        create_source(config)
    deploy_stack.main(argv)


if __name__ == "__main__":
    main()
