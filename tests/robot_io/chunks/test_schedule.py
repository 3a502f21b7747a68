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
