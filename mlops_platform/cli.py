"""`mlops`: the command line (checking domains and specs, ingestion cursors, quarantine,
models, serving).

The replay source system and the year replay have their own command, `simulator`."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil

from mlops_platform.settings import PROJECT_ROOT, data_dir


def ensure_dagster_home() -> str:
    """Use $DAGSTER_HOME, or <data dir>/dagster_home seeded with the repo's dagster.yaml."""
    home = os.environ.get("DAGSTER_HOME") or str(data_dir() / "dagster_home")
    os.makedirs(home, exist_ok=True)
    target = os.path.join(home, "dagster.yaml")
    if not os.path.exists(target):
        shutil.copy(PROJECT_ROOT / "dagster.yaml", target)
    os.environ["DAGSTER_HOME"] = home
    return home


def _default_model() -> str:
    """The first enabled spec (`MLOPS_MODEL_SPECS`, or the enabled domains defaults)."""
    from mlops_platform.domains import enabled_spec_names

    names = enabled_spec_names()
    return names[0] if names else ""


def cmd_serve(args: argparse.Namespace) -> None:
    import logging

    import uvicorn

    from mlops_platform.serving.app import create_app

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    uvicorn.run(
        create_app(),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=30,
    )


def cmd_check(args: argparse.Namespace) -> None:
    """Load the named (default: enabled) specs, their domain declarations and feature functions,
    and say what the platform will build, or what is wrong: the file and the field, no trace."""
    from mlops_platform.domains import domain_for, enabled_spec_names, features_module
    from mlops_platform.domains.schema import SqlSource
    from mlops_platform.settings import default_source_url
    from mlops_platform.specs import load_spec

    try:
        names = args.specs or enabled_spec_names()
        if not names:
            raise ValueError("no spec enabled: set MLOPS_MODEL_SPECS (or MLOPS_DOMAINS)")
        for name in names:
            spec = load_spec(name)
            domain = domain_for(spec)
            features_module(domain)
            print(f"{spec.name}: {spec.task} of {domain.name} ({domain.folder})")
            print(
                f"  target    {spec.target.column}"
                + (f" > {spec.target.threshold}" if spec.target.threshold is not None else "")
            )
            print(f"  features  {', '.join(spec.features.columns)}")
            print(f"  functions {', '.join(spec.features.functions)}")
            for source_name, source in domain.sources.items():
                tables = ", ".join(domain.tables_of(source_name))
                where = (
                    f"${source.url_env}, else {default_source_url(source.default_file)}"
                    if isinstance(source, SqlSource)
                    else f"${source.url_env}"
                    + (", else a local stand-in on loopback" if source.local_server else "")
                )
                print(f"  source    {source_name} ({source.kind}: {tables}) at {where}")
            print(
                f"  jobs      ingest, train_{spec.name}, daily_{spec.name}, "
                f"score_{spec.name}, monitor_{spec.name}"
            )
    except SyntaxError as exc:
        raise SystemExit(f"mlops check: {exc.filename}, line {exc.lineno}: {exc.msg}") from None
    except (ValueError, FileNotFoundError, KeyError, ImportError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise SystemExit(f"mlops check: {message}") from None


def cmd_quarantine(args: argparse.Namespace) -> None:
    from mlops_platform.contracts.publish import reference_values
    from mlops_platform.contracts.quarantine import pending_quarantine
    from mlops_platform.contracts.quarantine_replay import replay_quarantine
    from mlops_platform.contracts.rules import CONTRACTS
    from mlops_platform.stores import plain_stores

    warehouse = plain_stores().warehouse
    tables = [args.table] if args.table else list(CONTRACTS)
    for table in tables:
        if table not in CONTRACTS:
            raise SystemExit(f"unknown table {table!r}; one of {', '.join(CONTRACTS)}")
        contract = CONTRACTS[table]
        if args.action == "list":
            pending = pending_quarantine(warehouse, table)
            print(f"quarantine.{table}: {len(pending)} rows pending")
            if len(pending):
                shown = [*contract.key, "_version", "_quarantine_reason", "_quarantined_at"]
                print(pending[shown].head(args.limit).to_string(index=False))
            continue
        clock = _clock_or_none(args)
        outcomes = replay_quarantine(
            warehouse, contract, reference_values(warehouse, contract), clock, run_id="cli"
        )
        counts: dict[str, int] = {}
        for outcome in outcomes:
            counts[outcome.outcome] = counts.get(outcome.outcome, 0) + 1
            print(
                f"  {table} {outcome.key} v{outcome.version}: {outcome.outcome} - {outcome.reason}"
            )
        summary = (
            ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "nothing pending"
        )
        print(f"quarantine.{table}: {summary}")


def _clock_or_none(args: argparse.Namespace):
    """The platform's clock (the profile's: the replay clock locally), or None if it has no
    time yet: then the wall clock bounds event times."""
    from mlops_platform.clock import ClockUnavailable, TableClock
    from mlops_platform.profiles import plain_clock

    clock = TableClock(url=args.url) if args.url else plain_clock()
    try:
        return clock.now()
    except ClockUnavailable:
        return None


def cmd_source_cursor(args: argparse.Namespace) -> None:

    from mlops_platform.contracts.rules import CONTRACTS
    from mlops_platform.ingestion.cursors import cursor_log, rewind_cursor
    from mlops_platform.stores import plain_stores

    warehouse = plain_stores().warehouse
    if args.rewind_to or args.reset:
        if args.table not in CONTRACTS:
            raise SystemExit(f"--table must be one of {', '.join(CONTRACTS)}")
        value = None if args.reset else args.rewind_to
        previous = rewind_cursor(warehouse, args.table, CONTRACTS[args.table].cursor, value)
        print(
            f"cursor of {args.table}: {previous} -> {value or 'start'}; the next ingest run reads "
            "from there (rows already in raw at the same version are skipped)"
        )
        return
    log = cursor_log(warehouse)
    if args.table:
        log = log[log["table_name"] == args.table]
    print(log.to_string(index=False) if len(log) else "no cursor yet (nothing published)")


def cmd_model(args: argparse.Namespace) -> None:
    from mlops_platform.registry.audit import flush, pending, verify_chain
    from mlops_platform.registry.promotion import PromotionRefused, audit_log, rollback
    from mlops_platform.registry.store import CHALLENGER, CHAMPION, PREVIOUS
    from mlops_platform.stores import plain_stores

    args.model = args.model or _default_model()
    stores = plain_stores()
    registry, warehouse = stores.mlflow.registry(), stores.warehouse
    if args.action == "rollback":
        if not args.reason:
            raise SystemExit("a rollback needs --reason (it goes into the audit log)")
        try:
            changes = rollback(
                registry, warehouse, args.model, reason=args.reason, actor=args.actor, run_id="cli"
            )
        except PromotionRefused as exc:
            raise SystemExit(f"refused: {exc}") from None
        queued = any(c.queued for c in changes)
        print(
            f"{args.model}: champion v{changes[0].from_version} -> v{changes[0].to_version} "
            + (
                "(audit row queued: the warehouse is busy; written on the next audit write)"
                if queued
                else "(audited)"
            )
        )
    elif args.action == "sign":
        from mlops_platform.registry.audit import validate_reason
        from mlops_platform.registry.signing import sign_legacy

        if not args.version:
            raise SystemExit("sign needs --version (a version gated before signing existed)")
        try:
            reason = validate_reason(args.reason)
            sign_legacy(registry, args.model, args.version, args.actor, reason)
        except (PromotionRefused, RuntimeError) as exc:
            raise SystemExit(f"refused: {exc}") from None
        print(f"{args.model} v{args.version}: signed by the pipeline's key ({args.actor})")
    elif args.action == "status":
        for alias in (CHAMPION, CHALLENGER, PREVIOUS):
            version = registry.alias_version(args.model, alias)
            state = ""
            if version is not None:
                try:
                    with registry.verified_download(args.model, version):
                        state = "  signed, verified"
                except RuntimeError as exc:  # every verification error says why
                    state = f"  NOT VERIFIED (never served): {exc}"
            print(f"{alias:<18} {version or '-'}{state}")
    elif args.verify:
        waiting = flush(warehouse, registry)
        problems = verify_chain(warehouse, registry, args.model)
        if waiting:
            print(f"{waiting} audit row(s) still queued (warehouse busy)")
        if problems:
            print("\n".join(["audit log TAMPERED:", *problems]))
            raise SystemExit(1)
        print(f"audit log of {args.model}: hash chain intact")
    else:
        log = audit_log(warehouse, args.model)
        columns = ["changed_at", "alias", "from_version", "to_version", "actor", "reason"]
        print(log[columns].to_string(index=False) if len(log) else "no alias changes yet")
        if waiting := len(pending(warehouse)):
            print(f"{waiting} audit row(s) queued, not yet written (warehouse busy)")


def _iso_time(value: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO time: {value!r}") from None


def _version(value: str) -> str:
    if not value.isdigit() or len(value) > 18:
        raise argparse.ArgumentTypeError(f"a model version is a positive integer, not {value!r}")
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mlops", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser(
        "check", help="validate domain declarations, specs and feature functions"
    )
    check.add_argument(
        "specs", nargs="*", help="spec names (default: MLOPS_MODEL_SPECS or the domains' defaults)"
    )
    check.set_defaults(handler=cmd_check)

    source = commands.add_parser("source", help="the ingestion cursors of the source tables")
    source_commands = source.add_subparsers(dest="action", required=True)
    cursor = source_commands.add_parser(
        "cursor", help="show each table's ingestion cursor, or rewind one (--table, --rewind-to)"
    )
    cursor.add_argument("--table", default="")
    cursor.add_argument(
        "--rewind-to", type=_iso_time, default=None, help="ISO time to read the table from again"
    )
    cursor.add_argument("--reset", action="store_true", help="read the whole table again")
    cursor.set_defaults(handler=cmd_source_cursor)

    serve = commands.add_parser("serve", help="the model serving API (follows the champion)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.set_defaults(handler=cmd_serve)

    quarantine = commands.add_parser("quarantine", help="inspect or replay quarantined rows")
    quarantine.add_argument("action", choices=["list", "replay"])
    quarantine.add_argument("--table", default="")
    quarantine.add_argument("--limit", type=int, default=20)
    quarantine.add_argument(
        "--url", default="", help="database of a clock table (default: the profile's clock)"
    )
    quarantine.set_defaults(handler=cmd_quarantine)

    model = commands.add_parser("model", help="registry: status, audit log, rollback, sign")
    model.add_argument("action", choices=["status", "audit", "rollback", "sign"])
    model.add_argument("--version", type=_version, default=None, help="sign: the version to sign")
    model.add_argument("--model", default="", help="registered model (default: first enabled spec)")
    model.add_argument("--reason", default="")
    model.add_argument("--actor", default=os.environ.get("USER", "cli"))
    model.add_argument(
        "--verify", action="store_true", help="audit: check the hash chain (exit 1 if tampered)"
    )
    model.set_defaults(handler=cmd_model)

    args = parser.parse_args(argv)
    args.handler(args)


if __name__ == "__main__":
    main()
