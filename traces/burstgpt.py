"""BurstGPT traces (HPMLL/BurstGPT): ChatGPT and GPT-4 usage logs from Azure OpenAI.

Columns ``Timestamp`` (seconds, float), ``Model``, ``Request tokens``, ``Response tokens``,
``Total tokens``, ``Log Type``. A row with ``Response tokens = 0`` is a failed request: it is
counted (``num_failed``) and left out, unless ``include_failed: true`` keeps it (its output
is then raised to one token, counted with the other raised lengths). ``Model`` becomes the
request's ``app`` and ``Log Type`` its ``client`` ("Conversation log" / "API log").
"""

from __future__ import annotations

import csv
from collections.abc import Iterator

from traces.rows import MonotoneClock, ReadContext, TraceRow, csv_rows, open_text, to_float, to_int

COLUMNS = ("Timestamp", "Request tokens", "Response tokens")


def sniff(header: list[str]) -> bool:
    """Whether a CSV header is a BurstGPT header."""
    return all(c in header for c in COLUMNS)


def read(ctx: ReadContext) -> Iterator[TraceRow]:
    """Stream the rows of a BurstGPT CSV."""
    clock = MonotoneClock()
    with open_text(ctx.path) as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            ctx.on_error = "raise"
            ctx.bad_row(1, f"missing column(s) {missing}; found {header}")
        i_ts, i_in, i_out = (header.index(c) for c in COLUMNS)
        i_model = header.index("Model") if "Model" in header else None
        i_log = header.index("Log Type") if "Log Type" in header else None
        width = max(i_ts, i_in, i_out) + 1
        for line, row in csv_rows(reader, width, ctx, header):
            try:
                t = to_float(row[i_ts], "Timestamp")
                n_in = to_int(row[i_in], "Request tokens")
                n_out = to_int(row[i_out], "Response tokens")
            except ValueError as exc:
                ctx.bad_row(line, str(exc))
                continue
            problem = clock.check(t)
            if problem:
                ctx.bad_row(line, problem)
                continue
            arrival = clock.accept(t)
            if n_out == 0:
                ctx.counts["num_failed"] += 1
                if not ctx.include_failed:
                    continue
            extra = {}
            if i_model is not None and i_model < len(row) and row[i_model]:
                extra["app"] = row[i_model].strip()
            if i_log is not None and i_log < len(row) and row[i_log]:
                extra["client"] = row[i_log].strip()
            yield TraceRow(line, arrival, n_in, n_out, extra or None)
