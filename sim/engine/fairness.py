"""Fairness across clients, from a run's request rows (defined once; summary keys ``fair_*``).

A request's service is its weighted token cost w_p x input + w_q x output tokens (VTC's
defaults 1 and 2), divided by its client's weight, delivered evenly between its first token
and its finish (as the VTC artifact's plots count it; a one-token answer counts at once)::

    service of client c in [l, r] = sum over c's finished requests of cost x overlap([l, r],
                                    [first_token_s, finish_s]) / (finish_s - first_token_s)

- ``service_over_time``: each client's accumulated service at given times (the plot kind
  ``service``);
- ``service_difference`` (the VTC paper's Table / artifact's ``get_service_diff_over_time``):
  ticks x_i = i (T - warmup) / n, i = 1..n-1, windows of ``window_s`` around x_i + warmup;
  per tick, s_j = client j's service rate and d_j its demand rate (cost of requests arriving
  in the window / window); the tick's difference is sum_j min(max_k s_k - s_j, |d_j - s_j|);
  ``fair_service_diff_max`` / ``_mean`` over ticks (tokens/s); the summary uses the paper's
  60 s windows and 30 s warm-up for runs of 600 s or more, scaled by T / 600 for shorter ones;
- ``backlogged_difference``: per tick, among clients backlogged at the window's end (a
  request arrived and not yet scheduled), max - min service rate in the window; max and
  mean over ticks with at least two such clients;
- Jain's index (sum x)^2 / (n sum x^2) over the clients' total weighted service;
- per-client latency (TTFT mean / p50 / p99, E2E mean) of finished requests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

W_P, W_Q = 1.0, 2.0
PAPER_TICKS, PAPER_WINDOW_S, PAPER_WARMUP_S, PAPER_RUN_S = 20, 60.0, 30.0, 600.0


class FairRows:
    """The request columns the fairness keys read, as numpy arrays in the frame's row order:
    from a requests frame (``of_frame``) or from ``RequestColumns`` (``of_columns``, no pandas);
    the same values either way, so the keys are the same bits."""

    def __init__(self, client: list, finished: np.ndarray, arrival_s: np.ndarray, first_scheduled_s: np.ndarray,
                 first_token_s: np.ndarray, finish_s: np.ndarray, input_tokens: np.ndarray,
                 output_tokens: np.ndarray, num_output_tokens: np.ndarray, ttft_s: np.ndarray) -> None:
        self.client = client
        self.named = np.fromiter((c is not None and c == c for c in client), dtype=bool, count=len(client))
        self.finished, self.arrival_s, self.first_scheduled_s = finished, arrival_s, first_scheduled_s
        self.first_token_s, self.finish_s, self.ttft_s = first_token_s, finish_s, ttft_s
        self.input_tokens = input_tokens.astype(float)
        self.output_tokens = output_tokens.astype(float)
        self.num_output_tokens = num_output_tokens.astype(float)

    @classmethod
    def of_frame(cls, df: pd.DataFrame) -> FairRows:
        """The rows of a requests frame."""
        return cls(df["client"].tolist(), (df["state"] == "finished").to_numpy(bool),
                   df["arrival_s"].to_numpy(float), df["first_scheduled_s"].to_numpy(float),
                   df["first_token_s"].to_numpy(float), df["finish_s"].to_numpy(float),
                   df["input_tokens"].to_numpy(), df["output_tokens"].to_numpy(),
                   df["num_output_tokens"].to_numpy(), df["ttft_s"].to_numpy(float))

    @classmethod
    def of_columns(cls, cols: Any) -> FairRows:
        """The rows of a ``sim.engine.request_columns.RequestColumns``."""
        return cls(cols.client, cols.finished, cols.arrival_s, cols.first_scheduled_s, cols.first_token_s,
                   cols.finish_s, cols.input_tokens, cols.output_tokens, cols.num_output_tokens, cols.ttft_s)

    def num_clients(self) -> int:
        """Distinct clients named, as ``Series.nunique`` counts them."""
        return len({c for c, named in zip(self.client, self.named.tolist(), strict=True) if named})


def _rows(df: pd.DataFrame | FairRows) -> FairRows:
    return df if isinstance(df, FairRows) else FairRows.of_frame(df)


def _served(rows: FairRows, w_p: float, w_q: float, weights: dict[str, float] | None):
    """(client codes, client names, cost, start, end) of finished requests with a client."""
    fin = rows.finished & rows.named
    codes, names = _codes([c for c, f in zip(rows.client, fin.tolist(), strict=True) if f])
    cost = w_p * rows.input_tokens[fin] + w_q * rows.num_output_tokens[fin]
    if weights:
        cost = cost / np.array([weights.get(n, 1.0) for n in names])[codes]
    return codes, names, cost, rows.first_token_s[fin], rows.finish_s[fin]


def _codes(clients: list) -> tuple[np.ndarray, list[str]]:
    text = [str(c) for c in clients]
    names = sorted(set(text))
    index = {n: i for i, n in enumerate(names)}
    return np.array([index[c] for c in text], dtype=np.int64), names


def _delivered_by_client(cost: np.ndarray, start: np.ndarray, end: np.ndarray, codes: np.ndarray, n: int,
                         lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Cost delivered in each [lo_k, hi_k], summed by client: ticks x clients (one tick at a time,
    so memory stays O(requests))."""
    span = end - start
    timed = span > 0
    out = np.zeros((len(lo), n))
    for k, (a, b) in enumerate(zip(lo.tolist(), hi.tolist(), strict=True)):
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.where(timed, (np.minimum(b, end) - np.maximum(a, start)).clip(min=0) / span,
                            ((end >= a) & (end <= b)).astype(float))
        out[k] = np.bincount(codes, weights=frac * cost, minlength=n)
    return out


def service_over_time(df: pd.DataFrame, times: np.ndarray, w_p: float = W_P, w_q: float = W_Q,
                      weights: dict[str, float] | None = None) -> pd.DataFrame:
    """Accumulated weighted service of each client at ``times``: one column per client."""
    import pandas as pd

    codes, names, cost, start, end = _served(_rows(df), w_p, w_q, weights)
    times = np.asarray(times, dtype=float)
    acc = _delivered_by_client(cost, start, end, codes, len(names), np.full(len(times), -np.inf), times)
    return pd.DataFrame(acc, index=pd.Index(times, name="time_s"), columns=names)


def _ticks(rows: FairRows, num_ticks: int, window_s: float, warmup_s: float,
           duration_s: float | None) -> tuple[np.ndarray, np.ndarray]:
    t_end = float(np.nanmax(rows.arrival_s)) if duration_s is None else duration_s
    x = (t_end - warmup_s) / num_ticks * np.arange(1, num_ticks)
    return x - window_s / 2 + warmup_s, x + window_s / 2 + warmup_s


def _served_per_tick(rows: FairRows, num_ticks: int, window_s: float, warmup_s: float, duration_s: float | None,
                     w_p: float, w_q: float, weights: dict[str, float] | None):
    """(client names, tick window starts, ends, service rate per tick and client), or None with
    fewer than two clients, an empty window, or one too short for finite rates."""
    codes, names, cost, start, end = _served(rows, w_p, w_q, weights)
    if len(names) < 2 or not window_s > 0:
        return None
    lo, hi = _ticks(rows, num_ticks, window_s, warmup_s, duration_s)
    with np.errstate(over="ignore"):
        rate = _delivered_by_client(cost, start, end, codes, len(names), lo, hi) / window_s
    if not np.isfinite(rate).all():  # a window so short (a subnormal span) that rates overflow
        return None
    return names, lo, hi, rate


def _arrivals_by_client(rows: FairRows, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The rows of requests that name a client (a mask), and each one's index in ``names`` (-1 if
    not there)."""
    index = {c: i for i, c in enumerate(names)}
    named = rows.named
    return named, np.array([index.get(str(c), -1) for c, n in zip(rows.client, named.tolist(), strict=True) if n],
                           dtype=np.int64)


def service_difference(df: pd.DataFrame | FairRows, num_ticks: int = PAPER_TICKS, window_s: float = PAPER_WINDOW_S,
                       warmup_s: float = PAPER_WARMUP_S, duration_s: float | None = None, w_p: float = W_P,
                       w_q: float = W_Q, weights: dict[str, float] | None = None) -> np.ndarray:
    """The VTC paper's service difference per tick (tokens/s; see the module docstring)."""
    rows = _rows(df)
    ticks = _served_per_tick(rows, num_ticks, window_s, warmup_s, duration_s, w_p, w_q, weights)
    if ticks is None:
        return np.zeros(0)
    names, lo, hi, served = ticks
    n = len(names)
    arr, acodes = _arrivals_by_client(rows, names)
    keep = acodes >= 0
    acost = (w_p * rows.input_tokens[arr] + w_q * rows.output_tokens[arr])[keep]
    if weights:
        acost = acost / np.array([weights.get(c, 1.0) for c in names])[acodes[keep]]
    at = rows.arrival_s[arr][keep]
    with np.errstate(over="ignore"):
        demand = np.array([np.bincount(acodes[keep], weights=acost * ((at >= a) & (at <= b)), minlength=n)
                           for a, b in zip(lo.tolist(), hi.tolist(), strict=True)]).reshape(len(lo), n) / window_s
    if not np.isfinite(demand).all():
        return np.zeros(0)
    top = served.max(axis=1, keepdims=True)
    return np.minimum(top - served, np.abs(demand - served)).sum(axis=1)


def backlogged_difference(df: pd.DataFrame | FairRows, num_ticks: int = PAPER_TICKS,
                          window_s: float = PAPER_WINDOW_S, warmup_s: float = PAPER_WARMUP_S,
                          duration_s: float | None = None, w_p: float = W_P, w_q: float = W_Q,
                          weights: dict[str, float] | None = None) -> np.ndarray:
    """Per tick with >= 2 backlogged clients: max - min service rate among them (tokens/s)."""
    rows = _rows(df)
    ticks = _served_per_tick(rows, num_ticks, window_s, warmup_s, duration_s, w_p, w_q, weights)
    if ticks is None:
        return np.zeros(0)
    names, lo, hi, served = ticks
    arr, acodes = _arrivals_by_client(rows, names)
    a = rows.arrival_s[arr]
    s = rows.first_scheduled_s[arr]
    finish = rows.finish_s[arr]
    s = np.where(np.isnan(s), np.where(np.isnan(finish), np.inf, finish), s)
    out = []
    for k, t in enumerate(hi):
        waiting = (a <= t) & (s > t) & (acodes >= 0)
        backlogged = np.unique(acodes[waiting])
        if len(backlogged) >= 2:
            row = served[k, backlogged]
            out.append(row.max() - row.min())
    return np.array(out)


def jain_index(values: np.ndarray) -> float:
    """Jain's fairness index of ``values``: 1 when all are equal, 1/n when one has everything."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0 or not (x ** 2).sum():
        return float("nan")
    return float(x.sum() ** 2 / (len(x) * (x ** 2).sum()))


def client_latency(df: pd.DataFrame) -> pd.DataFrame:
    """Per client: requests, finished, TTFT mean / p50 / p99 and E2E mean of finished requests."""
    fin = df[(df["state"] == "finished") & df["client"].notna()]
    g = fin.groupby("client")
    out = g["ttft_s"].agg(ttft_mean_s="mean", ttft_p50_s="median",
                          ttft_p99_s=lambda s: float(np.percentile(s, 99)))
    out["e2e_mean_s"] = g["e2e_s"].mean()
    out["num_finished"] = g.size()
    out["num_requests"] = df[df["client"].notna()].groupby("client").size()
    return out


def _ttft_p99_by_client(rows: FairRows) -> list[float]:
    """Each client's TTFT p99 over its finished requests (``client_latency``'s ``ttft_p99_s``)."""
    by_client: dict[Any, list[int]] = {}
    fin = rows.finished & rows.named
    for i, c in enumerate(rows.client):
        if fin[i]:
            by_client.setdefault(c, []).append(i)
    p99 = [float(np.percentile(rows.ttft_s[idx], 99)) for idx in by_client.values()]
    return [p for p in p99 if p == p]  # NaN skipped, as Series.max / min skip it


def fairness_summary(df: pd.DataFrame | FairRows) -> dict[str, Any]:
    """The ``fair_*`` summary keys (empty when fewer than two clients appear), from a requests
    frame or from its columns (``FairRows``)."""
    if not isinstance(df, FairRows) and "client" not in df:
        return {}
    rows = _rows(df)
    if rows.num_clients() < 2:
        return {}
    codes, names, cost, _s, _e = _served(rows, W_P, W_Q, None)
    totals = np.bincount(codes, weights=cost, minlength=len(names)) if len(codes) else np.zeros(len(names))
    t_end = float(np.nanmax(rows.arrival_s))
    if not t_end > 0:
        t_end = float(np.nanmax(rows.finish_s)) if (~np.isnan(rows.finish_s)).any() else 0.0
    scale = min(1.0, t_end / PAPER_RUN_S)  # the paper's windows on its 600 s runs; shorter runs scale them
    kw = {"window_s": PAPER_WINDOW_S * scale, "warmup_s": PAPER_WARMUP_S * scale}
    kw["duration_s"] = t_end
    diff = service_difference(rows, **kw) if t_end > 0 else np.zeros(0)
    back = backlogged_difference(rows, **kw) if t_end > 0 else np.zeros(0)
    p99 = _ttft_p99_by_client(rows)
    nan = float("nan")
    return {
        "fair_num_clients": rows.num_clients(),
        "fair_service_diff_max": float(diff.max()) if len(diff) else nan,
        "fair_service_diff_mean": float(diff.mean()) if len(diff) else nan,
        "fair_backlogged_diff_max": float(back.max()) if len(back) else nan,
        "fair_backlogged_diff_mean": float(back.mean()) if len(back) else nan,
        "fair_jain_index": jain_index(totals),
        "fair_ttft_p99_max_client_s": max(p99) if p99 else nan,
        "fair_ttft_p99_min_client_s": min(p99) if p99 else nan,
    }
