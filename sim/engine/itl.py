"""Inter-token gaps (ITL) of a whole run, in bounded memory.

Gaps go into log-spaced bins of relative width ``REL_WIDTH`` (0.1%) from 1 us to 10^4 s:
percentiles are exact to within one bin (the reported value is the bin's geometric
centre), while the mean, the count and the maximum are exact. The mean is the correctly
rounded quotient of the exact sum (``ExactSum``): it does not depend on the order in which gaps
arrive, on the flush boundaries, or on whether a gap came one by one or with a weight, so a
fast path that books a stretch's gaps at another moment than stepping gives the same bits.
Memory is fixed (about 190 kB
of counts plus a flush buffer), whatever the number of tokens; the fast path adds a stretch's
per-iteration gaps with a weight (the number of requests that saw each gap).

The buffer is bounded on every path without slowing the per-token call::

    add(gap)         one C call (array.append), never checks: stepping calls it once per token
    add_many(...)    checks both buffers (fast path, once per stretch; add_weighted: one gap)
    checkpoint()     flushes once ``flush_at`` gaps are buffered; the Recorder calls it once per
                     iteration and once per finished request (see Recorder.steps)

so at most ``flush_at`` + one iteration's tokens are ever buffered.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence

import numpy as np

REL_WIDTH = 1e-3
LOW_S = 1e-6
HIGH_S = 1e4
_LOG_GROWTH = math.log1p(REL_WIDTH)
NUM_BINS = int(math.ceil(math.log(HIGH_S / LOW_S) / _LOG_GROWTH)) + 2  # + underflow and overflow
_FLUSH_AT = 1 << 16


_MANTISSA_BITS = 53
_HALF_BITS = 26      # a mantissa split into a high and a low part, each times a weight, summed exactly
_EXACT_TERMS = 1 << 26  # count x largest weight per exact float64 block sum (2^27 x 2^26 = 2^53)
_UNIT_BITS = 1074   # every finite double is an integer multiple of 2^-1074
_MANTISSA_SCALE = float(1 << _MANTISSA_BITS)
_HALF_SCALE = float(1 << _HALF_BITS)
_HALF_DOWN = 1.0 / _HALF_SCALE
_ROUND = 1.5 * 2.0 ** 52  # x + _ROUND - _ROUND is x rounded to an integer, for |x| < 2^51


class ExactSum:
    """The exact sum of weighted doubles, as a Python integer in units of 2^-1074.

    Each value is m * 2^(e - 53) with an integer mantissa m (``np.frexp``); m is split into a
    high and a low part, each times its integer weight an exact integer under 2^53 in float64,
    and their sums per exponent are exact in float64 as long as a block's terms stay under
    2^53 (blocks of at most 2^26 / largest weight values). So ``add`` is exact for any order
    and grouping, and ``mean`` is the correctly rounded quotient (Python's int division)."""

    def __init__(self) -> None:
        self.units = 0
        self.special = 0.0  # the sum of any non-finite values (inf, nan), which have no mantissa

    def add(self, values: np.ndarray, weights: np.ndarray | None) -> None:
        """Add sum(values * weights) exactly (weights: non-negative integers as float64, or None)."""
        finite = np.isfinite(values)
        if not finite.all():
            bad = ~finite
            self.special += float((values[bad] * (1.0 if weights is None else weights[bad])).sum())
            values = values[finite]
            weights = None if weights is None else weights[finite]
        n = len(values)
        if not n:
            return
        wmax = 1.0 if weights is None else float(weights.max())
        step = max(1, int(_EXACT_TERMS // max(wmax, 1.0)))
        for i in range(0, n, step):
            self._add_block(values[i:i + step], None if weights is None else weights[i:i + step])

    def _add_block(self, values: np.ndarray, weights: np.ndarray | None) -> None:
        frac, exp = np.frexp(values)
        mant = frac * _MANTISSA_SCALE  # integers below 2^53, exact in float64 (as is each step below)
        high = mant * _HALF_DOWN + _ROUND  # rounds to an integer (below 2^27: exact from here on)
        high -= _ROUND
        low = mant - high * _HALF_SCALE  # |low| <= 2^25
        if weights is not None:
            high *= weights
            low *= weights
        lo_exp = int(exp.min())
        idx = exp - lo_exp
        sums_high = np.bincount(idx, weights=high).tolist()
        sums_low = np.bincount(idx, weights=low).tolist()
        units = 0
        for k, (h, lo) in enumerate(zip(sums_high, sums_low, strict=True)):
            if h or lo:
                shift = lo_exp + k - _MANTISSA_BITS + _UNIT_BITS  # value = mantissa x 2^(exp - 53)
                term = (int(h) << _HALF_BITS) + int(lo)
                units += term << shift if shift >= 0 else term >> -shift
        self.units += units

    def mean(self, count: int) -> float:
        """The exact sum over ``count``, correctly rounded."""
        if self.special:  # an inf or nan was added: the float sum's answer
            return self.special / count
        return self.units / (count << _UNIT_BITS)


class ItlHistogram:
    """Weighted inter-token gaps: ``add`` one, ``add_many`` with a weight, then ``summary``."""

    def __init__(self, flush_at: int = _FLUSH_AT) -> None:
        self.counts = np.zeros(NUM_BINS, dtype=np.int64)
        self._sum = ExactSum()
        self._count = 0
        self._max_s = 0.0
        self.flush_at = flush_at
        self._singles = array("d")
        self.add = self._singles.append        # hot path: one gap, no check (see checkpoint)
        # weighted gaps, flat: the values, and per add_many call its weight and how many values
        self._chunk_vals = array("d")
        self._chunk_weights = array("d")
        self._chunk_lens = array("q")
        self._chunk_len = 0

    def add_many(self, gaps: Sequence[float], weight: int) -> None:
        """Record ``weight`` copies of every gap in ``gaps``."""
        if isinstance(gaps, np.ndarray):
            self._chunk_vals.frombytes(gaps.astype(np.float64, copy=False).tobytes())
        else:
            self._chunk_vals.extend(gaps)
        self._chunk_added(weight, len(gaps))

    def add_weighted(self, gap: float, weight: int) -> None:
        """``add_many((gap,), weight)``: one gap with a weight (a stretch's first gap)."""
        self._chunk_vals.append(gap)
        self._chunk_added(weight, 1)

    def _chunk_added(self, weight: int, k: int) -> None:
        """Book a chunk of ``k`` values just appended with its weight; flush either buffer when full."""
        self._chunk_weights.append(weight)
        self._chunk_lens.append(k)
        self._chunk_len += k
        if self._chunk_len >= self.flush_at:
            self.flush()
        if len(self._singles) >= self.flush_at:
            self._flush_singles()

    def checkpoint(self) -> None:
        """Flush the single gaps once ``flush_at`` are buffered (cheap when not)."""
        if len(self._singles) >= self.flush_at:
            self._flush_singles()

    @property
    def num_buffered(self) -> int:
        """Gaps waiting in the buffers, not yet in the bins."""
        return len(self._singles) + self._chunk_len

    def _bin(self, values: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            idx = np.floor(np.log(np.maximum(values, 0.0) / LOW_S) / _LOG_GROWTH) + 1
        return np.clip(np.nan_to_num(idx, neginf=0.0), 0, NUM_BINS - 1).astype(np.int64)

    def _account(self, values: np.ndarray, weights: np.ndarray | None) -> None:
        if not len(values):
            return
        self.counts += np.bincount(self._bin(values), weights=weights, minlength=NUM_BINS).astype(np.int64)
        self._sum.add(values, weights)
        self._count += int(len(values) if weights is None else weights.sum())
        self._max_s = max(self._max_s, float(values.max()))

    @property
    def count(self) -> int:
        """Gaps recorded (with their weights)."""
        self.flush()
        return self._count

    @property
    def max_s(self) -> float:
        """Largest gap (exact)."""
        self.flush()
        return self._max_s

    def _flush_singles(self) -> None:
        values = np.frombuffer(self._singles, dtype=np.float64).copy()
        del self._singles[:]
        self._account(values, None)

    def flush(self) -> None:
        """Move buffered gaps into the bins."""
        self._flush_singles()
        if self._chunk_lens:
            values = np.frombuffer(self._chunk_vals, dtype=np.float64).copy()
            weights = np.repeat(np.frombuffer(self._chunk_weights, dtype=np.float64),
                                np.frombuffer(self._chunk_lens, dtype=np.int64))
            del self._chunk_vals[:], self._chunk_weights[:], self._chunk_lens[:]
            self._chunk_len = 0
            self._account(values, weights)

    def percentiles(self, qs: tuple[int, ...]) -> list[float]:
        """Gap percentiles (bin centres; nan when no gap was recorded)."""
        self.flush()
        if self._count == 0:
            return [float("nan")] * len(qs)
        cum = np.cumsum(self.counts)
        out = []
        for q in qs:
            idx = int(np.searchsorted(cum, q / 100.0 * self._count, side="left"))
            idx = min(idx, NUM_BINS - 1)
            if idx == 0:
                out.append(LOW_S)
            else:  # bin idx covers [LOW * g^(idx-1), LOW * g^idx)
                out.append(min(LOW_S * math.exp((idx - 0.5) * _LOG_GROWTH), self._max_s))
        return out

    def mean_s(self) -> float:
        """Exact mean gap."""
        self.flush()
        return self._sum.mean(self._count) if self._count else float("nan")
