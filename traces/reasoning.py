"""Chain-of-thought output lengths of reasoning models (``reasoning_cot``), from published statistics.

Large reasoning models answer with thousands to tens of thousands of tokens. The means below
are those reported for DeepSeek-R1-Distill-Qwen-7B with full reasoning in Arora and Zanette,
"Training Language Models to Reason Efficiently" (arXiv 2502.04463, 2025, Fig. 2), read off the
figure and rounded (about 1.5K tokens on GSM8K, 4K on MATH-500, 13K on AIME 2024); GPQA-Diamond
(science) at 7K is an assumption between them. Generation stops at 32,768 tokens, the
DeepSeek-R1 evaluation limit. Each benchmark is a log-normal with that mean and log-sd
``sigma`` (0.6 unless told; per-question spread is not published in one number), clipped;
``mix`` draws a benchmark per request with ``weights``::

    lengths:
      input: {name: lognormal, median_tokens: 120, sigma: 0.5, max_tokens: 1024}
      output: {name: reasoning_cot, benchmark: mix}

The output is split into reasoning steps by the KV manager that needs it (policies/kv/
memshare.py: lognormal steps, a per-request share redundant).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from sim.errors import ConfigError
from sim.schema import param
from traces.lengths import LENGTHS, _clip

#: mean output tokens per benchmark (DeepSeek-R1-Distill-Qwen-7B, see the module docstring)
MEAN_OUTPUT_TOKENS = {"gsm8k": 1500.0, "math500": 4000.0, "gpqa": 7000.0, "aime2024": 13000.0}
MAX_GENERATION_TOKENS = 32768

Benchmark = Literal["gsm8k", "math500", "gpqa", "aime2024", "mix"]


@dataclass
class ReasoningParams:
    """Which benchmark's chain-of-thought lengths, their spread and clip."""

    benchmark: Benchmark = param("mix", doc="gsm8k, math500, gpqa, aime2024, or mix")
    sigma: float = param(0.6, ge=0, doc="log-sd of the length around the benchmark's mean")
    weights: list[float] = param(default_factory=lambda: [0.25, 0.25, 0.25, 0.25],
                                 doc="mix: weights of gsm8k, math500, gpqa, aime2024")
    min_tokens: int = param(16, ge=1, doc="clip below")
    max_tokens: int = param(MAX_GENERATION_TOKENS, ge=1, doc="clip above (the generation limit)")

    def validate(self) -> None:
        if len(self.weights) != 4 or any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
            raise ConfigError("needs 4 non-negative weights with a positive sum", "weights")
        if self.max_tokens < self.min_tokens:
            raise ConfigError("must be >= min_tokens", "max_tokens")


@LENGTHS.register("reasoning_cot")
class ReasoningCoT:
    """Log-normal chain-of-thought lengths with a benchmark's published mean."""

    Params = ReasoningParams

    def __init__(self, params: ReasoningParams):
        self.params = params

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        p = self.params
        names = list(MEAN_OUTPUT_TOKENS)
        if p.benchmark == "mix":
            w = np.asarray(p.weights, dtype=float)
            means = np.asarray([MEAN_OUTPUT_TOKENS[k] for k in names])[rng.choice(4, size=n, p=w / w.sum())]
        else:
            means = np.full(n, MEAN_OUTPUT_TOKENS[p.benchmark])
        mu = np.log(means) - 0.5 * p.sigma * p.sigma  # log-normal with that mean
        return _clip(rng.lognormal(mu, p.sigma), p.min_tokens, p.max_tokens)
