"""Weight streaming (C2CServe's HybridGEMM) for the replicas of multi-model pools.

Before each iteration of a streaming replica, HBM's share ``1 - rho`` of the weight reads is
priced by the cost model (``set_weight_read_scale``) and the rest, ``rho`` of the bytes the
iteration reads, is copied over its chip's shared host link; the iteration ends when both are
done. A cuttable plan is priced by the formula at the link's current share instead. ``set_rho``
moves the split; the weights a lower rho leaves are copied into HBM in the background, a
quarter of the model at a time, over the same link.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sim.engine.replica import Replica


class WeightStreamMixin:
    """The streaming half of ``ModelHub``."""

    def _stream(self, rep: Replica, plan: Any) -> Any:
        """Before an iteration of a streaming replica: price HBM's share of the weight reads and
        start the stream of the rest over the chip's link; the iteration waits for both."""
        st = rep.models
        rho = st.rho
        cm = rep.cost_model
        if plan.preemptible or plan.hold or plan.done_layers or plan.stop_at_layer is not None:
            st.priced_by = None  # a scale of its own: set again for the next plain iteration
            if hasattr(cm, "set_weight_read_scale"):
                share = st.chip.host.bytes_per_s / (1 + st.chip.host.num_active)
                hbm = self.pools[rep.pool].device.hbm_gbps * 1e9 * getattr(cm.params, "memory_efficiency", 1.0)
                cm.set_weight_read_scale(max(rho * hbm / share, 1.0 - rho))
            return None
        scale = 1.0 - rho
        if st.priced_by is not cm or st.priced_scale != scale:  # else set already (no effect)
            set_scale = getattr(cm, "set_weight_read_scale", None)
            if set_scale is not None:
                set_scale(scale)
            st.priced_by, st.priced_scale = cm, scale
        if rho <= 0.0:
            return None
        tokens = plan.num_prefill_tokens + (len(plan.decode) if plan.decode_tokens is None
                                            else sum(plan.decode_tokens))
        num_bytes = rho * self.pools[rep.pool].bytes_read(rep.hardware.model, tokens)
        return self.transfer.copy(num_bytes, st.chip.host, st.chip.stream_row)

    def set_rho(self, rep: Replica, rho: float) -> None:
        """Set a streaming replica's rho target (clamped to its model's floor); a lower target
        starts a background copy of the weights it leaves to HBM, a higher one frees HBM."""
        st, pm = rep.models, self.pools[rep.pool]
        model = st.loaded
        if model is None:
            st.rho_target = rho
            return
        st.rho_target = min(1.0, max(rho, pm.rho_floor[model]))
        if st.hbm_fraction > 1.0 - st.rho_target:
            st.hbm_fraction = 1.0 - st.rho_target
            st.resident[model] = st.hbm_fraction * pm.weight_bytes[model]
            self._memory_row(rep, model, st.resident[model])
        elif pm.params.copy_to_hbm and st.copying != model and st.hbm_fraction < 1.0 - st.rho_target:
            self.env.process(self._copy_in(rep))

    def _copy_in(self, rep: Replica):
        """Copy the weights the rho target leaves to HBM over the chip's link, in quarters."""
        st, pm = rep.models, self.pools[rep.pool]
        model = st.loaded
        st.copying = model
        w = pm.weight_bytes[model]
        while st.loaded == model and st.hbm_fraction < 1.0 - st.rho_target - 1e-9:
            step = min(0.25, 1.0 - st.rho_target - st.hbm_fraction)
            t0 = self.env.now
            yield self.transfer.copy(step * w, st.chip.host)
            self._link_row(st.chip, 2, t0, self.env.now, step * w)
            if st.loaded != model:
                break
            st.hbm_fraction = min(1.0, st.hbm_fraction + step)
            st.resident[model] = st.hbm_fraction * w
            self._memory_row(rep, model, st.resident[model])
        if st.copying == model:
            st.copying = None
