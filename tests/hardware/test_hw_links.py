"""Links: lone transfer time, fair sharing under SimPy, collective formulas."""

from __future__ import annotations

import pytest
import simpy

from hardware.calibration_constants import ALLREDUCE_ALGOS
from hardware.links import LINKS, LinkSpec, SharedLink, allgather_time_s, allreduce_time_s, transfer_time_s

LINK = LinkSpec("test", gbps=10.0, latency_s=1e-3)  # 10 GB/s, 1 ms


def _run(sizes_and_starts):
    env = simpy.Environment()
    link = SharedLink(LINK)
    done = {}

    def go(i, size, start):
        yield env.timeout(start)
        duration = yield link.transfer(env, size)
        done[i] = (env.now, duration)

    for i, (size, start) in enumerate(sizes_and_starts):
        env.process(go(i, size, start))
    env.run()
    return done, link


def test_transfer_time_alone():
    assert transfer_time_s(1e9, LINK) == pytest.approx(1e-3 + 0.1)
    assert transfer_time_s(0, LINKS["nvlink4"]) == LINKS["nvlink4"].latency_s


def test_shared_link_alone_matches_formula():
    done, link = _run([(1e9, 0.0)])
    assert done[0][0] == pytest.approx(transfer_time_s(1e9, LINK))
    assert link.num_active == 0 and link.bytes_done == 1e9


def test_two_concurrent_transfers_share_bandwidth():
    done, _ = _run([(1e9, 0.0), (1e9, 0.0)])
    alone = transfer_time_s(1e9, LINK)
    for end, _duration in done.values():
        assert end > alone
        assert end == pytest.approx(1e-3 + 2 * 0.1)  # each gets half the bandwidth


def test_rates_recomputed_when_transfers_start_and_end():
    # A (1 GB) flows from 1 ms alone; B (0.25 GB) joins at 51 ms when A has moved 0.5 GB.
    # Sharing, B needs 50 ms at half rate; A then has 0.25 GB left at full rate: 25 ms more.
    done, _ = _run([(1e9, 0.0), (0.25e9, 0.05)])
    assert done[1] == pytest.approx((0.101, 0.051))
    assert done[0][0] == pytest.approx(0.101 + 0.025)


def test_allreduce_formula():
    ring = ALLREDUCE_ALGOS["ring"]
    t = allreduce_time_s(1e8, 8, 300.0, "ring")
    assert t == pytest.approx(ring.latency_s + 2 * 7 / 8 * 1e8 / (300e9 * ring.bus_efficiency))
    nvls = ALLREDUCE_ALGOS["nvls"]
    expected = nvls.latency_s + 1e8 / (450e9 * nvls.bus_efficiency)
    assert allreduce_time_s(1e8, 8, 450.0, "nvls") == pytest.approx(expected)
    assert allreduce_time_s(1e8, 1, 450.0, "ring") == 0.0
    assert allreduce_time_s(2e8, 4, 450.0, "ring") > allreduce_time_s(1e8, 4, 450.0, "ring")
    assert allgather_time_s(1e9, 4, LINK) == pytest.approx(1e-3 + 0.75 * 0.1)


def test_shared_link_terminates_late_in_a_long_run():
    """Copies at a large clock value (ulp ~ 1e-9 s) with awkward sizes must all finish."""
    import simpy

    from hardware.links import SharedLink, get_link

    env = simpy.Environment(initial_time=7.3e6)
    link = SharedLink(get_link("nvlink4"))
    done = []

    def copy(num_bytes, delay):
        yield env.timeout(delay)
        yield link.transfer(env, num_bytes)
        done.append(num_bytes)

    sizes = [123456789.123, 987654321.987, 5555.5, 3.0, 65_000_000_000.0]
    for i, size in enumerate(sizes):
        env.process(copy(size, i * 1e-7))
    steps = 0
    while env.peek() != float("inf") and steps < 10_000:
        env.step()
        steps += 1
    assert steps < 10_000 and sorted(done) == sorted(sizes)


def _staggered(wait: bool):
    """Five overlapping copies on one link; each copy's (start, end) as seen by on_done."""
    env = simpy.Environment()
    link = SharedLink(LINK)
    rows = []

    def go(size, start):
        yield env.timeout(start)
        ev = link.transfer(env, size, on_done=lambda s, e, n: rows.append((s, e, n)))
        if wait:
            yield ev

    for i, size in enumerate([3e8, 1e8, 7e8, 2e8, 5e8]):
        env.process(go(size, i * 0.013))
    env.run(until=1.0)  # the lazy copies' completions are brought up to the end by the poll
    link.poll()
    return sorted(rows), env


def test_unwaited_copies_complete_lazily_at_the_same_times():
    """A copy nobody waits on costs no event; its end time (on_done) equals the waited one's."""
    waited, env_w = _staggered(True)
    lazy, env_l = _staggered(False)
    assert len(waited) == 5 and lazy == waited
    assert next(env_l._eid) < next(env_w._eid)


def test_triggered_brings_the_link_up_to_now():
    env = simpy.Environment()
    link = SharedLink(LINK)
    ev = link.transfer(env, 1e9)
    env.run(until=0.05)
    assert not ev.triggered
    env.run(until=0.2)
    assert ev.triggered and ev.value == pytest.approx(1e-3 + 0.1)
    assert link.num_active == 0 and link.bytes_done == 1e9


def test_waiting_on_a_copy_done_before_anyone_looked_is_an_error():
    env = simpy.Environment()
    link = SharedLink(LINK)
    ev = link.transfer(env, 1e9)
    env.run(until=0.5)
    with pytest.raises(RuntimeError, match="completed before it looked"):
        ev.callbacks.append(lambda _e: None)
