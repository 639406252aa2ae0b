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
    from sim.tools.output import format_summary, write_run

    config = load_config(args.config, args.overrides)
    out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    _refuse_sweep_folder(out)
    result = simulate(config)
    files = write_run(result, out)
    if not args.quiet:
        from sim.config import load_yaml
        from sim.tools.defaults_note import applied_defaults

        print(f"servesim run {args.config} -> {out}/")
        for note in applied_defaults(load_yaml(args.config), config):
            print(f"  default: {note}")
        print(format_summary(result.summary))
        print(f"  files: {', '.join(p.name for p in files.values())}")
    return 0


def _refuse_sweep_folder(out: Path) -> None:
    """A sweep's results folder belongs to the sweep: a run writing into it would mix files in."""
    from sim.tools.sweep_file import JOURNAL, MANIFEST, SweepError

    for folder in (out, *out.absolute().parents):
        if (folder / MANIFEST).is_file() or (folder / JOURNAL).is_file():
            raise SweepError(f"{out} is inside sweep results folder {folder} ({MANIFEST}); "
                             "choose another --out for a single run")


# subcommands whose own module parses the rest of the command line: (module, help)
DELEGATED = {
    "calibrate": ("hardware.calibrate", "compare the analytic cost model with every measured point [--json]"),
    "bench": ("sim.tools.bench", "time fixed scenarios: wall time, req/s, events/s, peak RSS [--scenario] [--json]"),
    "trace": ("traces.stats", "trace tools: servesim trace stats FILE [--format F] [--json]"),
}


def add_delegated(sub: argparse._SubParsersAction) -> None:
    """List the delegated subcommands in --help (their modules parse their arguments)."""
    for name, (_module, text) in DELEGATED.items():
        sub.add_parser(name, help=text, add_help=False)


def _delegate(name: str, argv: list[str]) -> int:
    import importlib

    module, _text = DELEGATED[name]
    if name == "trace":  # servesim trace stats FILE ...
        if not argv or argv[0] != "stats":
            print("usage: servesim trace stats FILE [--format F] [--json]", file=sys.stderr)
            return 2
        argv = argv[1:]
    return int(importlib.import_module(module).main(argv) or 0)


def add_experiments(sub: argparse._SubParsersAction) -> None:
    """sweep, capacity, plot, check, gate and policies: parsers and handlers live in their own modules."""
    from sim.tools import capacity, check, gates, plot_cli, policies, report, sweep, validate

    for module in (sweep, capacity, plot_cli, report, check, gates, policies, validate):
        module.add_cli(sub)


COMMANDS = [add_run, add_delegated, add_experiments]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``servesim`` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="servesim", description="Discrete-event simulator of LLM serving clusters.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    try:
        if argv and argv[0] in DELEGATED:
            return _delegate(argv[0], argv[1:])
        args = parser.parse_args(argv)
        return args.handler(args)
    except ServesimError as exc:
        print(f"servesim: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("servesim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
