"""Sequence-parallel (ring-attention) prefill time for a prompt split over k replicas.

A long prompt's ``n`` new tokens are cut into k equal slices, one per replica of a gang.
Every replica runs all layers on its slice; attention needs every earlier key, so the KV
slices travel round a ring: in each of k-1 steps per layer each replica sends its current
KV slice (n/k tokens) to its neighbour while computing on the one it holds::

    replica 0: slice0 | attn(q0,kv0)  attn(q0,kv3)  attn(q0,kv2)  attn(q0,kv1)
    replica 1: slice1 | attn(q1,kv1)  attn(q1,kv0)  ...       (kv passed 0->1->2->3->0)
                        '-- compute overlaps the next hop --'

- compute: the single-replica iteration time of the whole chunk divided by k (dense GEMMs
  and, with a load-balanced "zigzag" split, causal attention both divide evenly);
- communication: each replica sends (k-1)/k x n x KV bytes per token over its link
  (all layers together) plus one link latency per hop and layer; a replica of g GPUs
  sends over g links in parallel (each GPU its heads' share);
- ``overlap`` of the shorter of the two is hidden behind the longer (1: ring attention's
  full overlap, max(compute, comm); 0: they add up);
- gather: the decode stays on the lead, so the other replicas' KV slices are copied to it
  afterwards ((k-1)/k x n x KV bytes per token over the lead's links), unless switched off.

PecSched's paper gives the scheme, not these constants: every term is a parameter here.
"""

from __future__ import annotations

from hardware.links import LinkSpec


def sp_comm_time_s(num_tokens: int, k: int, kv_bytes_per_token: float, link: LinkSpec, num_links: int,
                   num_layers: int) -> float:
    """Ring pass of KV slices: (k-1)/k x tokens x KV bytes over ``num_links`` links, plus
    one latency per hop and layer."""
    if k <= 1:
        return 0.0
    num_bytes = (k - 1) / k * num_tokens * kv_bytes_per_token
    return num_bytes / (link.gbps * 1e9 * num_links) + (k - 1) * num_layers * link.latency_s


def sp_prefill_time_s(single_s: float, num_tokens: int, k: int, kv_bytes_per_token: float, link: LinkSpec,
                      num_links: int = 1, num_layers: int = 32, overlap: float = 1.0,
                      gather_kv: bool = True) -> float:
    """Seconds for a prefill chunk of ``num_tokens`` that takes ``single_s`` on one replica,
    run sequence-parallel on ``k`` replicas (see the module docstring for the formula)."""
    if k <= 1:
        return single_s
    compute = single_s / k
    comm = sp_comm_time_s(num_tokens, k, kv_bytes_per_token, link, num_links, num_layers)
    t = compute + comm - overlap * min(compute, comm)
    if gather_kv:
        t += (k - 1) / k * num_tokens * kv_bytes_per_token / (link.gbps * 1e9 * num_links) + link.latency_s
    return t
