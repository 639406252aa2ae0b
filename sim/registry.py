"""One registry per kind of pluggable policy: routers, schedulers, KV managers, cost models,
speculation, controllers, workloads and prefill-to-decode hand-offs.

A registry is a dict from YAML name to a class, filled by a decorator at the definition site::

    @SCHEDULERS.register("sarathi")
    class SarathiScheduler:
        Params = SarathiParams      # a dataclass: the policy's typed parameter block
        def __init__(self, params, ctx): ...

An unknown name raises ConfigError listing the choices with a "did you mean". A dotted
``package.module:Class`` name loads an out-of-tree plug-in without registering it.

Built-in policies are found, not listed: ``load_builtins()`` imports every module under the
packages ``policies``, ``hardware`` and ``traces`` (subpackages included), so adding a policy
is adding one file. Modules and packages whose name starts with ``_`` are skipped.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

from sim.errors import ConfigError

BUILTIN_PACKAGES = ("policies", "hardware", "traces")
_builtins_loaded = False


def builtin_modules(packages: tuple[str, ...] = BUILTIN_PACKAGES) -> list[str]:
    """Dotted names of every module under ``packages`` (packages themselves included), sorted.

    The same walk as ``pkgutil.walk_packages``, except that a package whose name starts with
    ``_`` is neither imported nor entered (walk_packages imports every package it recurses into).
    """
    names: list[str] = []

    def walk(package: str) -> None:
        names.append(package)
        for info in pkgutil.iter_modules(importlib.import_module(package).__path__, prefix=f"{package}."):
            if info.name.rpartition(".")[2].startswith("_"):
                continue
            if info.ispkg:
                walk(info.name)
            else:
                names.append(info.name)

    for package in packages:
        walk(package)
    return sorted(names)


def load_builtins() -> None:
    """Import every built-in module, which registers its policies (idempotent)."""
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True
    for name in builtin_modules():
        importlib.import_module(name)


class Registry:
    """A named mapping from policy name to class, with helpful lookup errors."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Any] = {}

    def register(self, name: str) -> Callable[[Any], Any]:
        """Class decorator that registers ``cls`` under ``name``."""

        def decorate(cls: Any) -> Any:
            if name in self._entries and self._entries[name] is not cls:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = cls
            cls.registered_name = name
            return cls

        return decorate

    def names(self) -> list[str]:
        """Registered names, sorted."""
        load_builtins()
        return sorted(self._entries)

    def get(self, name: str, where: str = "") -> Any:
        """The class registered as ``name`` (or loaded from ``pkg.mod:Class``)."""
        load_builtins()
        if name in self._entries:
            return self._entries[name]
        if ":" in name:
            module_name, _, attr = name.partition(":")
            try:
                return getattr(importlib.import_module(module_name), attr)
            except (ImportError, AttributeError) as exc:
                raise ConfigError(f"cannot load plug-in {self.kind} {name!r}: {exc}", where) from None
        choices = ", ".join(sorted(self._entries)) or "(none)"
        close = difflib.get_close_matches(name, self._entries, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown {self.kind} {name!r}{hint} (choices: {choices})", where)

    def __contains__(self, name: str) -> bool:
        load_builtins()
        return name in self._entries


ROUTERS = Registry("router")
SCHEDULERS = Registry("scheduler")
KV_MANAGERS = Registry("kv manager")
COST_MODELS = Registry("cost model")
SPECULATORS = Registry("speculator")
CONTROLLERS = Registry("controller")
WORKLOADS = Registry("workload")
HANDOFFS = Registry("handoff")
