"""Which ticks a policy's chunk is for: a learned chunk starts at its observation's tick, the
scripted expert's at the next one."""

import numpy as np
import pytest

from robot_io.policy import Policy, PolicyOutput, commands_after_observation
from robot_io.sim.scripted_expert import ScriptedExpert

CHUNK = np.arange(12, dtype=np.float32).reshape(4, 3)  # (steps, action_dim): step i holds 3i, 3i+1, 3i+2


class LearnedPolicy(Policy):
    def infer(self, observation, instruction):
        return PolicyOutput(CHUNK)


def test_a_learned_chunk_loses_its_step_for_the_observation_tick_already_sent():
    np.testing.assert_array_equal(commands_after_observation(LearnedPolicy(), CHUNK), CHUNK[1:])


def test_a_chunk_planned_for_the_next_tick_runs_whole():
    assert ScriptedExpert.chunk_starts_next_tick
    np.testing.assert_array_equal(commands_after_observation(ScriptedExpert(), CHUNK), CHUNK)


def test_a_one_step_learned_chunk_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="holds no command after the observation's tick"):
        commands_after_observation(LearnedPolicy(), CHUNK[:1])
