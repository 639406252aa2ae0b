"""The ``servesim`` command line: one place for every subcommand.

Each subcommand is a function ``add_<name>(subparsers)`` registering its parser with a
``handler``; errors the user can fix (ServesimError) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sim.errors import ServesimError


def add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="simulate one config and write its results")
    p.add_argument("config", help="YAML config file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value by dotted path, e.g. cluster.pools[0].num_replicas=8")
    p.add_argument("--out", default=None, help="results folder (default runs/<config name>)")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(handler=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from sim.api import simulate
    from sim.config import load_config
    from sim.output import format_summary, write_run

    config = load_config(args.config, args.overrides)
    out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    result = simulate(config)
    files = write_run(result, out)
    if not args.quiet:
        print(f"servesim run {args.config} -> {out}/")
        print(format_summary(result.summary))
        print(f"  files: {', '.join(p.name for p in files.values())}")
    return 0


def add_calibrate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="compare the analytic cost model with measured points")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(handler=lambda a: _delegate("hardware.calibrate", a.rest))


def add_trace(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("trace", help="trace tools: servesim trace stats FILE [--json]")
    p.add_argument("action", choices=["stats"])
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(handler=lambda a: _delegate("traces.stats", a.rest))


def _delegate(module: str, argv: list[str]) -> int:
    import importlib

    return int(importlib.import_module(module).main(argv) or 0)


def add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="time fixed scenarios (wall time, requests/s, events/s, peak RSS)")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(handler=lambda a: _delegate("sim.bench", a.rest))


COMMANDS = [add_run, add_calibrate, add_trace, add_bench]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``servesim`` console script."""
    parser = argparse.ArgumentParser(prog="servesim", description="Discrete-event simulator of LLM serving clusters.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except ServesimError as exc:
        print(f"servesim: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("servesim: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
