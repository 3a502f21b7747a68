import numpy as np
import pytest

from robot_io.chunks.blending import BlendConfig
from robot_io.chunks.schedule import ChunkConfig, ChunkSchedule


def chunk(n=5):
    return np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 2), dtype=np.float32)


def test_chunk_starts_the_tick_after_its_observation():
    s = ChunkSchedule(ChunkConfig(3))
    s.push(chunk(), obs_tick=10, latency_ms=5)
    action, c = s.pop(11)
    assert action[0] == 0 and c.chunk_id == 1


def test_late_chunk_skips_steps_whose_tick_has_passed():
    s = ChunkSchedule(ChunkConfig(3))
    s.push(chunk(), obs_tick=10, latency_ms=120)
    action, _ = s.pop(13)  # arrived two ticks late
    assert action[0] == 2


def test_exhausted_or_empty_schedule_gives_no_action():
    s = ChunkSchedule(ChunkConfig(3))
    assert s.pop(0) == (None, None)
    s.push(chunk(2), obs_tick=0)
    assert s.pop(1)[0] is not None and s.pop(2)[0] is not None
    assert s.pop(3)[0] is None


def test_wants_a_chunk_once_after_execute_horizon_steps_or_when_used_up():
    s = ChunkSchedule(ChunkConfig(2))
    s.pop(0)
    assert s.wants_chunk(0)  # nothing planned
    assert not s.wants_chunk(0)  # asked once: the request is in flight
    s.push(chunk(5), obs_tick=0)  # answers it
    s.pop(1)
    assert not s.wants_chunk(1)  # one step of two run
    s.pop(2)
    assert s.wants_chunk(2)
    s.push(chunk(2), obs_tick=10)
    s.pop(11)
    assert not s.wants_chunk(11)
    s.pop(12)
    assert s.wants_chunk(12)  # its last step was for tick 12, before the horizon
    s.clear()
    assert s.remaining(0) == 0 and s.wants_chunk(0)  # clear drops the request in flight too


def test_a_pending_chunk_does_not_count_toward_the_horizon_and_a_cancelled_request_is_asked_again():
    s = ChunkSchedule(ChunkConfig(1))
    s.push(chunk(5), obs_tick=0)
    s.pop(1)
    assert s.wants_chunk(1)
    s.cancel_request()  # the inference failed
    assert s.wants_chunk(1)
    s.push(chunk(5), obs_tick=3)  # lands for ticks 4.. while tick 2 and 3 still run the old chunk
    s.pop(2)
    assert not s.wants_chunk(2)  # the new chunk has not run a step yet


def test_config_refuses_what_it_cannot_run():
    with pytest.raises(ValueError, match="execute_horizon"):
        ChunkConfig(0)
    with pytest.raises(ValueError, match="execute_horizon"):
        ChunkConfig(True)
    with pytest.raises(TypeError, match="BlendConfig"):
        ChunkConfig(6, blend="linear")
    assert ChunkConfig().blend == BlendConfig()


def test_the_delay_is_measured_at_take_over_and_the_next_chunk_asked_for_early_by_it():
    s = ChunkSchedule(ChunkConfig(4, start_early=True))
    assert s.expected_delay() == 1 and s.last_delay() is None
    s.push(chunk(20), obs_tick=0)
    s.pop(3)  # took over 3 ticks after its observation
    assert s.last_delay() == 3 and s.expected_delay() == 3
    assert not s.wants_chunk(3)  # 1 step run: 1 + (3 - 1) < 4
    s.pop(4)
    assert s.wants_chunk(4)  # 2 steps run: the next chunk lands as this one has run 4
    s.push(chunk(20), obs_tick=4)
    s.pop(5)  # a faster one: 1 tick; the largest of the last few still plans the next request
    assert s.last_delay() == 1 and s.expected_delay() == 3
    late = ChunkSchedule(ChunkConfig(4))  # the default: only after 4 steps, however late chunks come
    late.push(chunk(20), obs_tick=0)
    for tick in (3, 4, 5):
        late.pop(tick)
        assert not late.wants_chunk(tick)  # without start_early: only after 4 steps
    late.pop(6)
    assert late.wants_chunk(6)


def test_a_guided_schedule_gives_the_running_plan_and_its_committed_steps():
    s = ChunkSchedule(ChunkConfig(4, guided=True))
    assert s.guide(0) is None  # nothing runs yet
    s.push(chunk(20), obs_tick=0)
    s.pop(2)  # delay 2
    guide = s.guide(2)
    assert guide.committed == 2
    np.testing.assert_array_equal(guide.plan[:, 0], np.arange(1, 20))  # the plan from tick 2 on: steps 1..19
    assert ChunkSchedule(ChunkConfig(4)).guide(2) is None  # not guided
