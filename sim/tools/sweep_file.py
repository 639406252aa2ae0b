"""Sweep files: a base config and the points to run, parsed and validated before any runs.

The format is described in sim/tools/sweep.py, which runs sweeps. Every point's config is
validated here, so a bad sweep file fails before the first point runs.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.config import from_dict, load_yaml, set_dotted
from sim.errors import ConfigError, ServesimError

SECTIONS = ("name", "description", "base", "set", "grid", "zip", "points", "seeds", "labels")
RESERVED_COLUMNS = ("point", "seed", "status", "error", "dir")
JOURNAL = "results.jsonl"
MANIFEST = "sweep.json"
TABLE_STEM = "results"
# summary keys kept out of the combined table: they differ between identical runs
UNREPRODUCIBLE = ("wall_s",)


class SweepError(ServesimError):
    """A sweep file or results folder is unusable; the message names the problem."""


@dataclass
class SweepPoint:
    """One run of a sweep: its index, swept values by dotted key, and its seed."""

    index: int
    values: dict[str, Any]
    seed: int

    @property
    def name(self) -> str:
        """Folder name of the point, e.g. ``p0007``."""
        return f"p{self.index:04d}"


@dataclass
class Sweep:
    """A parsed sweep: the base config mapping, the swept keys and every point."""

    name: str
    base: dict
    keys: list[str]
    points: list[SweepPoint]
    labels: dict[str, str] = field(default_factory=dict)
    source: str | None = None

    def label(self, key: str) -> str:
        """Column name of swept key ``key``."""
        return self.labels.get(key, key)

    def config_dict(self, point: SweepPoint) -> dict:
        """The full config mapping of ``point`` (base, swept values, seed, no progress bar)."""
        data = copy.deepcopy(self.base)
        for key, value in point.values.items():
            set_dotted(data, key, copy.deepcopy(value))
        data["seed"] = point.seed
        set_dotted(data, "engine.progress", False)
        return data

    def fingerprint(self) -> str:
        """A hash of everything that decides the results: base config and points."""
        blob = {"base": self.base, "points": [[p.values, p.seed] for p in self.points]}
        text = json.dumps(blob, sort_keys=True, default=repr)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def manifest(self) -> dict[str, Any]:
        """What ``sweep.json`` records about the sweep."""
        return {"name": self.name, "source": self.source, "fingerprint": self.fingerprint(),
                "num_points": len(self.points), "keys": self.keys, "labels": self.labels,
                "points": [{"point": p.index, "seed": p.seed, "values": p.values} for p in self.points]}


# ---------------------------------------------------------------------------- parsing


def load_sweep(path_or_mapping: str | Path | dict, base_dir: str | Path | None = None) -> Sweep:
    """Parse and validate a sweep file (or mapping); every point's config is checked."""
    if isinstance(path_or_mapping, dict):
        data, source = copy.deepcopy(path_or_mapping), None
        here = Path(base_dir) if base_dir is not None else Path.cwd()
    else:
        source = str(path_or_mapping)
        try:
            data = load_yaml(path_or_mapping)
        except ConfigError as exc:
            raise SweepError(str(exc)) from None
        here = Path(path_or_mapping).parent
    where = source or "sweep"
    try:
        return _parse(data, here, where, source)
    except (ConfigError, SweepError) as exc:
        msg = str(exc)
        raise SweepError(msg if msg.startswith(where) else f"{where}: {msg}") from None


def _parse(data: dict, here: Path, where: str, source: str | None) -> Sweep:
    for key in data:
        if key not in SECTIONS:
            close = difflib.get_close_matches(str(key), SECTIONS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise SweepError(f"unknown section {key!r}{hint} (sections: {', '.join(SECTIONS)})")
    base = _load_base(data.get("base"), here)
    for key, value in _mapping(data.get("set", {}), "set").items():
        set_dotted(base, key, value)
    grid = _lists(data["grid"], "grid") if "grid" in data else {}
    zipped = _lists(data["zip"], "zip") if "zip" in data else {}
    if zipped and len({len(v) for v in zipped.values()}) > 1:
        lengths = ", ".join(f"{k}: {len(v)}" for k, v in zipped.items())
        raise SweepError(f"zip: lists differ in length ({lengths})")
    explicit = _explicit_points(data["points"]) if "points" in data else [{}]
    seeds = _seeds(data.get("seeds"), base.get("seed", 0))
    keys = _swept_keys(grid, zipped, explicit)
    labels = _labels(data.get("labels", {}), keys)

    grid_rows = [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())]
    n_zip = len(next(iter(zipped.values()))) if zipped else 1
    zip_rows = [{k: v[i] for k, v in zipped.items()} for i in range(n_zip)]
    points = []
    for g, z, e in itertools.product(grid_rows, zip_rows, explicit):
        for seed in seeds:
            points.append(SweepPoint(len(points), {**g, **z, **e}, seed))
    name = str(data.get("name") or (Path(source).stem if source else "sweep"))
    sweep = Sweep(name, base, keys, points, labels, source)
    _validate_points(sweep)
    return sweep


def _load_base(value: Any, here: Path) -> dict:
    if value is None:
        raise SweepError("missing 'base' (a config file path or an inline config mapping)")
    if isinstance(value, dict):
        return copy.deepcopy(value)
    if not isinstance(value, str):
        raise SweepError(f"base: expected a path or a mapping, got {value!r}")
    path = here / value if not Path(value).is_absolute() else Path(value)
    if not path.is_file() and Path(value).is_file():
        path = Path(value)  # relative to the working directory
    if not path.is_file():
        raise SweepError(f"base: config file not found: {value} (looked in {here} and the working directory)")
    return load_yaml(path)


def _mapping(value: Any, section: str) -> dict:
    if not isinstance(value, dict):
        raise SweepError(f"{section}: expected a mapping of dotted key -> value, got {value!r}")
    return value


def _lists(value: Any, section: str) -> dict[str, list]:
    value = _mapping(value, section)
    if not value:
        raise SweepError(f"{section}: is empty (give at least one dotted key with a list of values)")
    for key, values in value.items():
        if not isinstance(values, list):
            raise SweepError(f"{section}.{key}: expected a list of values, got {values!r}")
        if not values:
            raise SweepError(f"{section}.{key}: empty list of values")
    return value


def _explicit_points(value: Any) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise SweepError("points: expected a non-empty list of override mappings")
    for i, p in enumerate(value):
        if not isinstance(p, dict):
            raise SweepError(f"points[{i}]: expected a mapping of dotted key -> value, got {p!r}")
    return value


def _seeds(value: Any, default: int) -> list[int]:
    if value is None:
        return [int(default)]
    if isinstance(value, bool):
        raise SweepError(f"seeds: expected a count or a list of seeds, got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise SweepError(f"seeds: a count must be >= 1, got {value}")
        return list(range(value))
    if isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                 for s in value):
        if len(set(value)) != len(value):
            raise SweepError(f"seeds: repeated seed in {value}")
        return list(value)
    raise SweepError(f"seeds: expected a count or a non-empty list of non-negative integers, got {value!r}")


def _swept_keys(grid: dict, zipped: dict, explicit: list[dict]) -> list[str]:
    keys: list[str] = []
    sections = [("grid", list(grid)), ("zip", list(zipped))] + [(f"points[{i}]", list(p))
                                                               for i, p in enumerate(explicit)]
    owner: dict[str, str] = {}
    for section, names in sections:
        for key in names:
            if key == "seed":
                raise SweepError(f"{section}: vary the seed with 'seeds:', not as a key")
            if key in owner and not (owner[key].startswith("points") and section.startswith("points")):
                raise SweepError(f"{section}.{key}: already swept in {owner[key]}")
            if key not in owner:
                owner[key] = section
                keys.append(key)
    return keys


def _labels(value: Any, keys: list[str]) -> dict[str, str]:
    labels = {str(k): str(v) for k, v in _mapping(value, "labels").items()}
    for key in labels:
        if key not in keys:
            raise SweepError(f"labels.{key}: not a swept key (swept: {', '.join(keys) or 'none'})")
    columns = [labels.get(k, k) for k in keys]
    for col in columns:
        if col in RESERVED_COLUMNS:
            raise SweepError(f"labels: column name {col!r} is reserved ({', '.join(RESERVED_COLUMNS)})")
        if columns.count(col) > 1:
            raise SweepError(f"labels: column name {col!r} used twice")
    return labels


def _validate_points(sweep: Sweep) -> None:
    """Parse every point's config (and build each distinct workload) before anything runs."""
    workloads: dict[str, Any] = {}
    for p in sweep.points:
        try:
            config = from_dict(sweep.config_dict(p))
        except ConfigError as exc:
            swept = ", ".join(f"{k}={v!r}" for k, v in p.values.items()) or "base config"
            raise SweepError(f"point {p.index} ({swept}, seed {p.seed}): {exc}") from None
        key = json.dumps(config.workload.to_config(), sort_keys=True, default=repr)
        if key not in workloads:
            try:
                workloads[key] = config.workload.build()
            except ConfigError as exc:
                raise SweepError(f"point {p.index}: {exc}") from None
