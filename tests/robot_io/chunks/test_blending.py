"""Blending maths on synthetic chunks, the blending queue, and seam measurement."""

import math

import numpy as np
import pytest

from robot_io.chunks.blending import (
    BlendConfig,
    ChunkSwitch,
    SeamMeter,
    blend_into_plan,
    ensemble_blend,
    ensemble_weights,
    linear_blend,
)
from robot_io.chunks.schedule import ChunkConfig, ChunkSchedule
from runtime.control.safety import SafetyLimits, make_safe

DIM = 3
JUMP = 1.0  # the step discontinuity between the old and the new chunk


def flat(value, n=20, dim=DIM):
    return np.full((n, dim), value, dtype=np.float32)  # (n, dim)


def max_step_change(actions, before):
    """The largest jump between consecutive commands, starting from `before` (dim,)."""
    path = np.vstack([before[None], actions])  # (n+1, dim)
    return float(np.abs(np.diff(path, axis=0)).max())


# --- config ------------------------------------------------------------------------------
def test_default_switches_at_once_and_a_linear_blend_fades_over_two_steps():
    assert BlendConfig() == BlendConfig(mode="none", steps=2)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"mode": "cubic"}, ValueError, "blend mode must be one of 'none', 'linear', 'exponential'; got 'cubic'"),
        ({"steps": 0}, ValueError, "blend steps must be an integer >= 1"),
        ({"steps": 2.5}, TypeError, "blend steps must be an integer >= 1"),
        ({"steps": True}, TypeError, "blend steps must be an integer >= 1"),
        ({"ensemble_k": -0.1}, ValueError, "ensemble_k must be a finite number >= 0"),
        ({"ensemble_k": math.nan}, ValueError, "ensemble_k must be a finite number >= 0"),
        ({"ensemble_k": "0.1"}, TypeError, "ensemble_k must be a number >= 0"),
    ],
)
def test_invalid_configs_raise_with_clear_messages(kwargs, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        BlendConfig(**kwargs)


# --- linear ------------------------------------------------------------------------------
def test_linear_blend_turns_a_step_discontinuity_into_a_ramp():
    old, new = flat(0.0), flat(JUMP)
    blended = linear_blend(old, new, steps=8)
    assert blended.shape == new.shape
    assert max_step_change(blended, old[0]) == pytest.approx(JUMP / 9)  # was JUMP without blending
    assert blended[0, 0] == pytest.approx(JUMP / 9)
    np.testing.assert_allclose(blended[8:], new[8:])  # the new chunk alone once the ramp is done
    assert np.all(np.diff(blended[:, 0]) >= 0)  # monotone: no overshoot


def test_linear_ramp_shrinks_to_a_short_overlap():
    old, new = flat(0.0, n=3), flat(JUMP)
    blended = linear_blend(old, new, steps=8)
    np.testing.assert_allclose(blended[:4, 0], [0.25, 0.5, 0.75, 1.0])  # done inside the overlap


def test_linear_blend_without_overlap_is_the_new_chunk():
    np.testing.assert_array_equal(linear_blend(flat(0.0, n=0), flat(JUMP), steps=8), flat(JUMP))


# --- exponential (ACT temporal ensembling) -------------------------------------------------
@pytest.mark.parametrize("count, k", [(1, 0.01), (4, 0.01), (7, 0.5), (5, 0.0)])
def test_ensemble_weights_sum_to_one_and_favour_older_predictions(count, k):
    w = ensemble_weights(count, k)
    assert w.shape == (count,) and w.sum() == pytest.approx(1.0)
    assert np.all(np.diff(w) <= 0)  # oldest first, each newer one weighs no more


def test_incremental_ensemble_equals_the_weighted_mean_of_all_predictions():
    rng = np.random.default_rng(0)
    k = 0.3
    predictions = [rng.normal(size=(6, DIM)).astype(np.float32) for _ in range(4)]  # same 6 ticks
    mean, counts = predictions[0], np.ones(6, dtype=np.int64)
    for p in predictions[1:]:
        mean, counts = ensemble_blend(mean, counts, p, k)
    expected = np.tensordot(ensemble_weights(4, k), np.stack(predictions), axes=1)  # (6, DIM)
    np.testing.assert_allclose(mean, expected, rtol=1e-5, atol=1e-6)
    assert counts.tolist() == [4] * 6


def test_ensembling_reduces_the_seam_and_the_plan_ends_with_the_new_chunk():
    plan, _ = blend_into_plan(None, 10, flat(0.0, n=5), BlendConfig(mode="exponential", ensemble_k=0.0))
    plan, overlap = blend_into_plan(plan, 12, flat(JUMP, n=10), BlendConfig(mode="exponential", ensemble_k=0.0))
    assert overlap == 3 and plan.start_tick == 12 and len(plan.actions) == 10
    np.testing.assert_allclose(plan.actions[:3, 0], JUMP / 2)  # plain mean of two predictions
    np.testing.assert_allclose(plan.actions[3:, 0], JUMP)
    assert plan.counts.tolist() == [2, 2, 2] + [1] * 7


# --- none --------------------------------------------------------------------------------
def test_none_is_the_new_chunk_as_it_is():
    plan, _ = blend_into_plan(None, 0, flat(0.0), BlendConfig(mode="none"))
    new = np.arange(30, dtype=np.float32).reshape(10, DIM)
    plan, overlap = blend_into_plan(plan, 5, new, BlendConfig(mode="none"))
    assert overlap == 10
    np.testing.assert_array_equal(plan.actions, new)


def ramp_chunk(n, start):
    return (start + np.arange(n, dtype=np.float32))[:, None] * np.ones((1, 2), dtype=np.float32)  # (n, 2)


def run_queue(q, pushes, ticks):
    """Pop every tick, pushing chunks at the ticks `pushes` names: {tick: (actions, obs_tick)}."""
    out = []
    for tick in ticks:
        if tick in pushes:
            actions, obs_tick = pushes[tick]
            q.push(actions, obs_tick=obs_tick, latency_ms=1)
        action, chunk = q.pop(tick)
        out.append((None if action is None else action.tolist(), None if chunk is None else chunk.chunk_id))
    return out


def old_queue_pop(chunks_by_tick, ticks):
    """What the queue did before blending: always the newest chunk's own step for the tick."""
    out, current = [], None
    for tick in ticks:
        if tick in chunks_by_tick:
            current = chunks_by_tick[tick]
        actions, obs_tick, chunk_id = current
        step = tick - obs_tick - 1
        out.append((actions[step].tolist() if 0 <= step < len(actions) else None, chunk_id))
    return out


def test_none_mode_queue_reproduces_the_old_behaviour_exactly():
    # Chunks pushed mid-chunk, one late (skips steps), and the last one runs out (hold).
    pushes = {1: (ramp_chunk(10, 0.0), 0), 6: (ramp_chunk(10, 100.0), 4), 13: (ramp_chunk(5, 50.0), 12)}
    ticks = range(1, 22)
    q = ChunkSchedule(ChunkConfig(4, BlendConfig(mode="none")))
    expected = old_queue_pop({t: (a, o, i + 1) for i, (t, (a, o)) in enumerate(pushes.items())}, ticks)
    assert run_queue(q, pushes, ticks) == expected


def test_queue_blends_the_incoming_chunk_with_the_running_one():
    q = ChunkSchedule(ChunkConfig(4, BlendConfig(mode="linear", steps=4)))
    q.push(flat(0.0, n=10), obs_tick=0, latency_ms=1)
    executed = [q.pop(t)[0] for t in range(1, 5)]  # ticks 1..4
    assert q.take_switch().overlap == 0
    q.push(flat(JUMP, n=10), obs_tick=4, latency_ms=1)
    executed += [q.pop(t)[0] for t in range(5, 15)]  # ticks 5..14
    switch = q.take_switch()
    assert switch.tick == 5 and switch.overlap == 6  # the old chunk still covers ticks 5..10
    assert q.take_switch() is None
    assert switch.raw_first[0] == JUMP and switch.blended_first[0] == pytest.approx(JUMP / 5)
    assert max_step_change(np.stack(executed), np.zeros(DIM)) == pytest.approx(JUMP / 5)
    assert q.pop(15)[0] is None  # the new chunk decides where the plan ends


def test_a_chunk_waits_for_its_first_tick_while_the_running_one_continues():
    q = ChunkSchedule(ChunkConfig(4))
    q.push(ramp_chunk(10, 0.0), obs_tick=0, latency_ms=1)
    q.pop(1)
    q.take_switch()
    q.push(ramp_chunk(10, 100.0), obs_tick=2, latency_ms=1)  # pushed before tick 2 was popped
    assert q.pop(2)[0][0] == 1.0 and q.take_switch() is None
    assert q.pop(3)[0][0] != 2.0 and q.take_switch().tick == 3


def test_blended_nan_still_makes_safety_hold():
    q = ChunkSchedule(ChunkConfig(4))
    q.push(flat(0.0, n=10), obs_tick=0, latency_ms=1)
    q.pop(1)
    q.push(flat(math.nan, n=10), obs_tick=1, latency_ms=1)
    action, _ = q.pop(2)
    keys = [f"j{i}" for i in range(DIM)]
    limits = SafetyLimits({k: (-1.0, 1.0) for k in keys}, {k: 0.1 for k in keys})
    previous = {k: 0.0 for k in keys}
    safe = make_safe(dict(zip(keys, map(float, action))), previous, limits)
    assert safe.held and safe.action == previous


# --- seams -------------------------------------------------------------------------------
def test_seam_meter_measures_max_abs_jump_and_keeps_a_short_history():
    meter = SeamMeter(history_length=2)
    last = np.array([0.0, 0.0, 0.5], dtype=np.float32)
    for tick in range(3):
        switch = ChunkSwitch(tick, tick + 1, np.array([0.1, -0.4, 0.5]), np.array([0.05, -0.1, 0.5]), 4)
        seam = meter.record(switch, last)
    assert seam.raw == pytest.approx(0.4) and seam.blended == pytest.approx(0.1)
    stats = meter.stats()
    assert stats.last == seam and [s.tick for s in stats.history] == [1, 2]
    assert isinstance(seam.raw, float)  # plain floats, so /api/status can serialise them
