"""The request record and its life cycle.

::

    QUEUED --admit--> PREFILL (chunks) --last prompt token--> DECODE --last token--> FINISHED
      ^                  |                                      |
      +---- PREEMPTED <--+--------------------------------------+   (recompute or swap)
    QUEUED --never fits / no replica--> REJECTED
    any live state --handed to another replica--> MIGRATING --> QUEUED/DECODE there

``deadline_s`` is absolute (seconds on the arrival clock); ``ttft_slo_s`` / ``tpot_slo_s`` are
limits. Requests are plain objects with ``__slots__`` (no per-token objects): the engine's hot loop
touches a few counters per iteration. Policies may read every field except
``output_tokens`` (the true length) and ``spec_acceptance``: they see ``req.view``
(``sim.engine.views.RequestView``), which hides both unless their config grants an oracle.
"""

from __future__ import annotations

from sim.engine.states import State
from sim.engine.views import RequestView

__all__ = ["Request", "State"]


class Request:
    """One inference request: its trace fields and its mutable serving state."""

    __slots__ = (
        # trace fields
        "id", "arrival_s", "input_tokens", "output_tokens", "client", "app", "session",
        "slo_class", "priority", "prefix_hashes", "prefix_block_tokens",
        "ttft_slo_s", "tpot_slo_s", "deadline_s", "job", "spec_acceptance", "model",
        # serving state
        "state", "pool", "replica", "first_replica", "num_computed_tokens", "num_output_tokens",
        "num_cached_tokens", "kv_blocks", "kv_shared_blocks", "kv_units", "view", "first_scheduled_s", "first_token_s",
        "last_token_s", "finish_s", "num_preemptions", "num_swaps", "reject_reason",
        "itl_max_s", "token_times", "num_migrations", "transfer_s", "policy_data", "cold_start_s",
    )

    def __init__(
        self,
        id: int,
        arrival_s: float,
        input_tokens: int,
        output_tokens: int,
        *,
        client: str | None = None,
        app: str | None = None,
        session: int | None = None,
        slo_class: str | None = None,
        priority: int = 0,
        prefix_hashes: tuple | None = None,
        prefix_block_tokens: int = 0,
        ttft_slo_s: float | None = None,
        tpot_slo_s: float | None = None,
        deadline_s: float | None = None,
        job: int | None = None,
        spec_acceptance: float | None = None,
        model: str | None = None,
    ):
        self.id = id
        self.arrival_s = arrival_s
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.client = client
        self.app = app
        self.session = session
        self.slo_class = slo_class
        self.priority = priority
        self.prefix_hashes = prefix_hashes
        self.prefix_block_tokens = prefix_block_tokens
        self.ttft_slo_s = ttft_slo_s
        self.tpot_slo_s = tpot_slo_s
        self.deadline_s = deadline_s
        self.job = job
        self.spec_acceptance = spec_acceptance  # draft-token acceptance rate (None: the speculator's)
        self.model = model  # the model it names (None: whatever its pool serves)
        self.view = RequestView(self)
        self.reset_state()

    def reset_state(self) -> None:
        """Clear all serving state (used at construction and by closed-loop re-issue)."""
        self.state = State.QUEUED
        self.pool = None
        self.replica = None
        self.first_replica = None      # replica of its first visit (a P/D request's prefill replica)
        self.num_computed_tokens = 0   # prompt + generated tokens whose KV exists
        self.num_output_tokens = 0     # tokens emitted to the user
        self.num_cached_tokens = 0     # prompt tokens served from the prefix cache
        self.kv_blocks = 0             # private KV blocks held
        self.kv_shared_blocks = 0      # blocks of shared units referenced (prefix cache, shares)
        self.kv_units = None           # shared prefix-cache units referenced
        self.first_scheduled_s = None
        self.first_token_s = None
        self.last_token_s = None
        self.finish_s = None
        self.num_preemptions = 0
        self.num_swaps = 0
        self.reject_reason = None
        self.itl_max_s = 0.0
        self.token_times = None
        self.num_migrations = 0
        self.transfer_s = 0.0
        self.policy_data = None        # free slot for a policy's per-request bookkeeping
        self.cold_start_s = 0.0        # arrival until a replica could run its model (multi-model pools)

    # ------------------------------------------------------------------ derived views
    @property
    def context_tokens(self) -> int:
        """Tokens that must be in the KV cache for the next step (prompt + emitted)."""
        return self.input_tokens + self.num_output_tokens

    @property
    def remaining_prefill_tokens(self) -> int:
        """Prompt (and, after a recompute preemption, generated) tokens still to compute.

        A prefill ends when ``num_computed_tokens == input_tokens + num_output_tokens`` and
        emits one token; a decode step computes the last emitted token and emits the next,
        so while decoding ``num_computed_tokens == input_tokens + num_output_tokens - 1``.
        """
        return self.input_tokens + self.num_output_tokens - self.num_computed_tokens

    @property
    def is_finished(self) -> bool:
        return self.state == State.FINISHED

    def __repr__(self) -> str:
        return (
            f"Request(id={self.id}, t={self.arrival_s:.3f}, in={self.input_tokens}, "
            f"out={self.num_output_tokens}/{self.output_tokens}, {self.state.name})"
        )
