"""CommandHistory: the last ticks' commands, oldest dropped."""

import numpy as np
import pytest

from runtime.control.command_history import CommandHistory


def test_rows_since_a_tick_in_key_order_and_bounded():
    history = CommandHistory(["a", "b"], length=3)
    for tick in range(5):
        history.append(tick, "policy" if tick % 2 else "hold", {"b": tick * 10.0, "a": float(tick)})
    ticks, sources, commands = history.since(3)
    assert ticks == [3, 4] and sources == ["policy", "hold"]
    np.testing.assert_array_equal(commands, [[3, 30], [4, 40]])
    assert history.since(0)[0] == [2, 3, 4]  # only the last 3 are kept
    history.clear()
    ticks, _, commands = history.since(0)
    assert ticks == [] and commands.shape == (0, 2)
    with pytest.raises(ValueError):
        CommandHistory(["a"], length=0)
