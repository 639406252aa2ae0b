"""DeepSpeed-FastGen's Dynamic SplitFuse (Holmes et al., 2024).

Decodes first, then prompt chunks so every forward pass carries the same number of tokens:
long prompts are split across passes, short ones are packed together to fill the budget.
The composition rule equals Sarathi's decode-first fill; what differs is the defaults of
DeepSpeed-MII (768 tokens per forward, 512 sequences) and no admission watermark.
"""

from __future__ import annotations

from dataclasses import dataclass

from policies.schedulers.base import Order, order_param
from policies.schedulers.sarathi import SarathiScheduler
from sim.registry import SCHEDULERS
from sim.schema import param


@dataclass
class SplitFuseParams:
    """DeepSpeed-MII / FastGen defaults."""

    token_budget: int = param(768, ge=1, doc="tokens per forward pass")
    max_num_seqs: int = param(512, ge=1, doc="most sequences in a batch")
    use_watermark: bool = param(False, doc="keep the KV manager's watermark free when admitting")
    order: Order = order_param()


@SCHEDULERS.register("splitfuse")
class SplitFuseScheduler(SarathiScheduler):
    """Fixed tokens per forward pass, decodes first (Dynamic SplitFuse)."""

    Params = SplitFuseParams

    def budget(self) -> int:
        return self.params.token_budget
