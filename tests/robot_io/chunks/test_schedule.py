import numpy as np
import pytest

from robot_io.chunks.schedule import ChunkQueue


def chunk(n=5):
    return np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 2), dtype=np.float32)


def test_chunk_starts_the_tick_after_its_observation():
    q = ChunkQueue(execute_horizon=3)
    q.push(chunk(), obs_tick=10, latency_ms=5)
    action, c = q.pop(11)
    assert action[0] == 0 and c.chunk_id == 1


def test_late_chunk_skips_steps_whose_tick_has_passed():
    q = ChunkQueue(execute_horizon=3)
    q.push(chunk(), obs_tick=10, latency_ms=120)
    action, _ = q.pop(13)  # arrived two ticks late
    assert action[0] == 2


def test_exhausted_or_empty_queue_gives_no_action():
    q = ChunkQueue(execute_horizon=3)
    assert q.pop(0) == (None, None)
    q.push(chunk(2), obs_tick=0, latency_ms=1)
    assert q.pop(1)[0] is not None and q.pop(2)[0] is not None
    assert q.pop(3)[0] is None


def test_refill_after_execute_horizon_or_when_used_up():
    q = ChunkQueue(execute_horizon=2)
    assert q.needs_refill(0)
    q.push(chunk(5), obs_tick=0, latency_ms=1)
    assert not q.needs_refill(1)
    q.pop(1)
    q.pop(2)
    assert q.needs_refill(2)
    q.push(chunk(2), obs_tick=10, latency_ms=1)
    assert q.needs_refill(12)  # its last step is for tick 12
    q.clear()
    assert q.remaining(0) == 0


def test_execute_horizon_validated():
    with pytest.raises(ValueError):
        ChunkQueue(0)
