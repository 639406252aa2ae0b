"""Write ``traces/data/sharegpt_v3_fit_vllm_paper_stats.csv``: ShareGPT V3-like lengths, a FIT.

Not a public original. No public processed file of ShareGPT V3 (the
``ShareGPT_V3_unfiltered_cleaned_split.json`` that vLLM's and DistServe's papers used)
lengths with a licence was found, so this file is a seeded fit to the statistics the vLLM
paper publishes (Kwon et al., SOSP 2023, section 6.1 / Fig. 11): ShareGPT mean input 161.31
tokens, mean output 337.99 tokens (8.4x and 5.8x Alpaca's 19.31 / 58.45), under the filter
vLLM's benchmark applies (input and output >= 4 tokens, input <= 1024, input + output <=
2048). Assumptions (not published): input and output independent, each lognormal with
``sigma`` 1.0 (input) and 0.9 (output); each median is bisected so that the filtered mean
matches the published mean. DistServe prepares ShareGPT differently (several turns
concatenated into the prompt, total < 2048 tokens; its paper gives no length statistics), so
this file is vLLM's processing, not DistServe's.

    python experiments/make_sharegpt_v3_fit.py [--check]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "traces" / "data" / "sharegpt_v3_fit_vllm_paper_stats.csv"
MEAN_INPUT, MEAN_OUTPUT = 161.31, 337.99
SIGMA_INPUT, SIGMA_OUTPUT = 1.0, 0.9
ROWS, SEED = 10_000, 0


def _keep(inp: np.ndarray, out: np.ndarray) -> np.ndarray:
    return (inp >= 4) & (out >= 4) & (inp <= 1024) & (inp + out <= 2048)


def _sample(rng: np.random.Generator, med_in: float, med_out: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    inp = np.rint(rng.lognormal(np.log(med_in), SIGMA_INPUT, n)).astype(np.int64)
    out = np.rint(rng.lognormal(np.log(med_out), SIGMA_OUTPUT, n)).astype(np.int64)
    keep = _keep(inp, out)
    return inp[keep], out[keep]


def fit() -> tuple[np.ndarray, np.ndarray]:
    """Bisect both medians (common random numbers, seed 0) until the filtered means match."""
    med_in, med_out = MEAN_INPUT, MEAN_OUTPUT
    for _ in range(40):
        inp, out = _sample(np.random.default_rng(SEED), med_in, med_out, 4 * ROWS)
        med_in *= MEAN_INPUT / inp.mean()
        med_out *= MEAN_OUTPUT / out.mean()
    inp, out = _sample(np.random.default_rng(SEED), med_in, med_out, 4 * ROWS)
    return inp[:ROWS], out[:ROWS]


def render() -> str:
    inp, out = fit()
    buf = io.StringIO()
    buf.write("num_prefill_tokens,num_decode_tokens\n")
    for a, b in zip(inp.tolist(), out.tolist(), strict=True):
        buf.write(f"{a},{b}\n")
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify the bundled file instead of writing it")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        same = OUT.read_text() == text
        print(f"{OUT.name}: {'identical' if same else 'DIFFERS'}")
        return 0 if same else 1
    OUT.write_text(text)
    print(f"wrote {OUT} ({ROWS} rows, sha256 {hashlib.sha256(text.encode()).hexdigest()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
