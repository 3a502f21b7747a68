from runtime.control.loop_timing import LoopClock


class FakeTime:
    def __init__(self):
        self.now = 0.0

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_ticks_follow_a_fixed_grid_without_drift():
    t = FakeTime()
    clock = LoopClock(10.0, clock=t.clock, sleep=t.sleep)
    starts = []
    for _ in range(20):
        start = clock.wait_for_tick()
        starts.append(start)
        t.now += 0.03  # work
        clock.tick_done(start)
    assert abs(starts[-1] - starts[0] - 1.9) < 1e-9
    stats = clock.stats()
    assert abs(stats.achieved_hz - 10.0) < 1e-6
    assert stats.missed_ticks == 0
    assert abs(stats.work_p50_ms - 30.0) < 1e-6


def test_overrun_counts_missed_ticks_and_skips_ahead():
    t = FakeTime()
    clock = LoopClock(10.0, clock=t.clock, sleep=t.sleep)
    clock.wait_for_tick()
    t.now += 0.35  # one tick took 3.5 periods
    start = clock.wait_for_tick()
    assert clock.missed_ticks == 2
    assert abs(start - 0.35) < 1e-9
    nxt = clock.wait_for_tick()
    assert abs(nxt - 0.4) < 1e-9  # back on the grid
