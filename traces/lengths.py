"""Token-length distributions, and the ``lengths:`` block that pairs input and output.

A distribution is registered in ``LENGTHS`` and samples integers >= 1 with
``sample(rng, n)``. The ``lengths:`` block of the synthetic workloads is either two
distributions or one file of real (input, output) pairs, sampled with replacement so the
correlation between prompt and answer lengths is kept::

    lengths:
      input: {name: lognormal, median_tokens: 1000, sigma: 1.0, max_tokens: 8192}
      output: {name: zipf, a: 1.6, scale_tokens: 20, max_tokens: 2048}

    lengths: {file: traces/data/sharegpt_8k_lengths_llama2_tokenizer.csv}
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.config import PolicySpec
from sim.errors import ConfigError
from sim.registry import Registry
from sim.schema import param

LENGTHS = Registry("length distribution")


def _clip(values: np.ndarray, low: int, high: int | None) -> np.ndarray:
    return np.clip(np.rint(values), low, high if high is not None else np.inf).astype(np.int64)


def _check_range(low: int, high: int | None, low_key: str, high_key: str) -> None:
    if high is not None and high < low:
        raise ConfigError(f"must be >= {low_key}", high_key)


@dataclass
class FixedParams:
    """Every request gets the same length."""

    tokens: int = param(512, ge=1, doc="the length")


@LENGTHS.register("fixed")
class Fixed:
    """A constant length."""

    Params = FixedParams

    def __init__(self, params: FixedParams):
        self.params = params

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, self.params.tokens, dtype=np.int64)


@dataclass
class UniformParams:
    """Uniform integers on [min_tokens, max_tokens]."""

    min_tokens: int = param(1, ge=1, doc="smallest length")
    max_tokens: int = param(1024, ge=1, doc="largest length (inclusive)")

    def validate(self) -> None:
        _check_range(self.min_tokens, self.max_tokens, "min_tokens", "max_tokens")


@LENGTHS.register("uniform")
class Uniform:
    """Uniform integer lengths."""

    Params = UniformParams

    def __init__(self, params: UniformParams):
        self.params = params

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.integers(self.params.min_tokens, self.params.max_tokens + 1, size=n)


@dataclass
class LognormalParams:
    """Log-normal lengths given by their median and log-space sigma, then clipped."""

    median_tokens: float = param(512.0, gt=0, doc="median length")
    sigma: float = param(1.0, ge=0, doc="standard deviation of log(length)")
    min_tokens: int = param(1, ge=1, doc="clip below")
    max_tokens: int | None = param(None, ge=1, doc="clip above (null: no limit)")

    def validate(self) -> None:
        _check_range(self.min_tokens, self.max_tokens, "min_tokens", "max_tokens")


@LENGTHS.register("lognormal")
class Lognormal:
    """Heavy-ish right tail, typical of prompt lengths."""

    Params = LognormalParams

    def __init__(self, params: LognormalParams):
        self.params = params

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        p = self.params
        return _clip(rng.lognormal(np.log(p.median_tokens), p.sigma, size=n), p.min_tokens, p.max_tokens)


@dataclass
class ZipfParams:
    """Zipf (power-law) lengths: scale_tokens * k with P(k) ~ k^-a, then clipped."""

    a: float = param(1.5, gt=1, doc="exponent (> 1); smaller = heavier tail")
    scale_tokens: int = param(1, ge=1, doc="tokens per Zipf unit")
    min_tokens: int = param(1, ge=1, doc="clip below")
    max_tokens: int | None = param(4096, ge=1, doc="clip above (null: no limit)")

    def validate(self) -> None:
        _check_range(self.min_tokens, self.max_tokens, "min_tokens", "max_tokens")


@LENGTHS.register("zipf")
class Zipf:
    """Power-law lengths: many short, a few very long."""

    Params = ZipfParams

    def __init__(self, params: ZipfParams):
        self.params = params

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        p = self.params
        return _clip(rng.zipf(p.a, size=n).astype(np.float64) * p.scale_tokens, p.min_tokens, p.max_tokens)


class LengthSpec(PolicySpec):
    """``{name: <distribution>, ...params}`` in YAML."""

    registry = LENGTHS


@dataclass
class LengthsConfig:
    """Input and output lengths: two distributions, or (input, output) pairs from a file."""

    input: LengthSpec | None = param(None, doc="prompt length distribution")
    output: LengthSpec | None = param(None, doc="output length distribution")
    file: str | None = param(None, doc="trace file whose (input, output) pairs are resampled")
    format: str = param("auto", doc="format of `file` (see traces/README.md)")
    order: str = param("random", doc="`random`: resample the file's pairs; `file`: take them in file order, "
                                     "cycling (replays a benchmark's requests)")

    def validate(self) -> None:
        if self.file is not None and (self.input is not None or self.output is not None):
            raise ConfigError("give either file or input/output distributions, not both", "file")
        if self.order not in ("random", "file"):
            raise ConfigError(f"must be 'random' or 'file', not {self.order!r}", "order")
        if self.order == "file" and self.file is None:
            raise ConfigError("order: file needs a lengths file", "order")
        if self.file is None and (self.input is None or self.output is None):
            missing = "input" if self.input is None else "output"
            raise ConfigError("required unless file is set", missing)
        from traces.formats import check_format

        check_format(self.format)


class LengthSampler:
    """Draws (input, output) pairs from a ``LengthsConfig``; the file is read once."""

    def __init__(self, config: LengthsConfig):
        self.config = config
        self._pairs: np.ndarray | None = None
        self._next = 0  # cursor of order: file
        if config.file is None:
            self._input = config.input.build()
            self._output = config.output.build()

    def pairs(self) -> np.ndarray:
        """The file's (input, output) pairs (loaded on first use)."""
        if self._pairs is None:
            from traces.formats import resolve_path
            from traces.lengths_file import load_pairs

            path = resolve_path(self.config.file)
            if not path.is_file():
                raise ConfigError(f"lengths file not found: {self.config.file}", "lengths.file")
            self._pairs = load_pairs(path, self.config.format)
        return self._pairs

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` input lengths and ``n`` output lengths."""
        if self.config.file is not None:
            pairs = self.pairs()
            if self.config.order == "file":
                idx = (self._next + np.arange(n)) % len(pairs)
                self._next += n
            else:
                idx = rng.integers(0, len(pairs), size=n)
            return pairs[idx, 0], pairs[idx, 1]
        return self._input.sample(rng, n), self._output.sample(rng, n)


def legacy_lengths(low: int, high: int | None) -> LengthSpec:
    """The fixed / uniform distribution of the flat ``input_tokens[_max]`` keys."""
    if high is None:
        return LengthSpec("fixed", FixedParams(low), Fixed)
    return LengthSpec("uniform", UniformParams(low, high), Uniform)
