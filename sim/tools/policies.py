"""``servesim policies [KIND...] [--json]``: every registered name by kind, with its parameters.

Parameters come from each class's ``Params`` dataclass (``sim.schema.describe``: name, type,
default and the ``doc`` given to ``param``). Plain text is one table per policy; ``--json``
is ``{kind: [{name, doc, params: [{name, type, default, required, doc}]}]}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

from sim import schema
from sim.errors import ServesimError
from sim.registry import REGISTRIES


def _first_line(obj: Any) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else ""


def describe_policy(cls: Any) -> dict[str, Any]:
    """One registered class: its name, docstring's first line and parameters."""
    params_cls = getattr(cls, "Params", None)
    if params_cls is None:
        return {"name": cls.registered_name, "doc": _first_line(cls), "params": []}
    missing = dataclasses.MISSING
    required = {f.name for f in dataclasses.fields(params_cls)
                if f.default is missing and f.default_factory is missing}
    params = [{"name": name, "type": type_name, "default": None if name in required else schema.to_dict(default),
               "required": name in required, "doc": doc}
              for name, type_name, default, doc in schema.describe(params_cls)]
    return {"name": cls.registered_name, "doc": _first_line(cls), "params": params}


def catalog(kinds: list[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """``{kind: [policy, ...]}`` for the named kinds (all when None), names sorted."""
    known = {r.kind: r for r in REGISTRIES}
    for k in kinds or []:
        if k not in known:
            raise ServesimError(f"unknown policy kind {k!r} (kinds: {', '.join(known)})")
    chosen = [r for r in REGISTRIES if not kinds or r.kind in kinds]
    return {r.kind: [describe_policy(r.get(n)) for n in r.names()] for r in chosen}


def format_catalog(data: dict[str, list[dict[str, Any]]]) -> str:
    """The catalog as text: a heading per kind, a line per policy, a table of its parameters."""
    lines: list[str] = []
    for kind, policies in data.items():
        lines.append(f"{kind}s")
        if not policies:
            lines.append("  (none registered)")
        for p in policies:
            lines.append(f"  {p['name']:<22}  {p['doc']}")
            rows = [(q["name"], q["type"], "required" if q["required"] else _fmt(q["default"]), q["doc"])
                    for q in p["params"]]
            if not rows:
                continue
            widths = [max(len(r[i]) for r in (("parameter", "type", "default", ""), *rows)) for i in range(3)]
            head = ("parameter", "type", "default", "doc")
            for r in (head, *rows):
                lines.append("      " + "  ".join(f"{r[i]:<{widths[i]}}" for i in range(3)) + f"  {r[3]}".rstrip())
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _fmt(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def main(kinds: list[str], as_json: bool, out: Any = None) -> int:
    """Print the catalog; 0."""
    out = out if out is not None else sys.stdout
    data = catalog([k.replace("_", " ") for k in kinds] or None)
    out.write(json.dumps(data, indent=2) + "\n" if as_json else format_catalog(data))
    return 0


def add_cli(sub: argparse._SubParsersAction) -> None:
    """Register ``servesim policies``."""
    p = sub.add_parser("policies", help="list every registered policy by kind, with its parameters [--json]")
    p.add_argument("kinds", nargs="*", metavar="KIND",
                   help=f"only these kinds ({', '.join(r.kind.replace(' ', '_') for r in REGISTRIES)})")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=lambda a: main(a.kinds, a.json))
