"""Trace formats by name, and detection of a file's format from its first lines.

=========== ==================================================================
name        reader
=========== ==================================================================
azure       Azure LLM inference 2023 / 2024 CSV (``traces.azure``)
burstgpt    BurstGPT CSV (``traces.burstgpt``)
mooncake    Mooncake JSON lines with hash_ids (``traces.mooncake``)
lengths     length-only CSV such as ShareGPT's (``traces.lengths_file``)
csv         servesim's own CSV schema (``traces.native``)
jsonl       servesim's own JSON-lines schema (``traces.native``)
=========== ==================================================================

``auto`` looks at the header (CSV) or the first record (JSON lines) and picks one.
"""

from __future__ import annotations

import csv
import difflib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

from sim.errors import ConfigError, TraceError
from traces import azure, burstgpt, lengths_file, mooncake, native
from traces.rows import ReadContext, TraceRow, open_text

Reader = Callable[[ReadContext], Iterator[TraceRow]]

FORMATS: dict[str, Reader] = {
    "azure": azure.read,
    "burstgpt": burstgpt.read,
    "mooncake": mooncake.read,
    "lengths": lengths_file.read,
    "csv": native.read_csv,
    "jsonl": native.read_jsonl,
}
FORMAT_NAMES = ("auto", *FORMATS)
# Formats whose rows carry no arrival time.
LENGTH_ONLY = frozenset({"lengths"})


def check_format(name: str, where: str = "format") -> None:
    """ConfigError with a "did you mean" when ``name`` is not a known format."""
    if name not in FORMAT_NAMES:
        close = difflib.get_close_matches(name, FORMAT_NAMES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown trace format {name!r}{hint} (choices: {', '.join(FORMAT_NAMES)})", where)


def detect_format(path: str | Path) -> str:
    """The format of ``path`` from its first line; TraceError when nothing matches."""
    path = str(path)
    with open_text(path) as fh:
        first = ""
        try:
            for first in fh:
                if first.strip():
                    break
        except (UnicodeDecodeError, EOFError, OSError) as exc:
            raise TraceError(path, 1, f"unreadable trace: {exc}") from None
    first = first.strip()
    if not first:
        raise TraceError(path, 1, "empty file: cannot detect its format")
    if first.startswith("{"):
        try:
            record = json.loads(first)
        except json.JSONDecodeError as exc:
            raise TraceError(path, 1, f"invalid JSON: {exc.msg}") from None
        if native.sniff_record(record):
            return "jsonl"
        if mooncake.sniff(record):
            return "mooncake"
        raise TraceError(path, 1, f"unrecognised JSON-lines keys {sorted(record)}; set format:")
    try:
        header = [h.strip() for h in next(csv.reader([first]))]
    except csv.Error as exc:
        raise TraceError(path, 1, f"unreadable first line: {exc}") from None
    for name, sniff in (("azure", azure.sniff), ("burstgpt", burstgpt.sniff),
                        ("csv", native.sniff_header), ("lengths", lengths_file.sniff)):
        if sniff(header):
            return name
    raise TraceError(path, 1, f"unrecognised CSV header {header}; set format: (one of {', '.join(FORMATS)})")


def resolve_format(path: str | Path, format: str) -> str:
    """``format`` itself, or the detected format when it is ``auto``."""
    check_format(format)
    return detect_format(path) if format == "auto" else format


def read_rows(ctx: ReadContext, format: str = "auto") -> Iterator[TraceRow]:
    """Stream the rows of ``ctx.path`` in the given (or detected) format."""
    return FORMATS[resolve_format(ctx.path, format)](ctx)


def resolve_path(path: str) -> Path:
    """``path`` as given when it exists, else relative to the repository root (for bundled
    traces such as ``traces/data/...`` used from another working directory)."""
    p = Path(path)
    if p.is_file() or p.is_absolute():
        return p
    repo_relative = Path(__file__).resolve().parents[1] / p
    return repo_relative if repo_relative.is_file() else p
