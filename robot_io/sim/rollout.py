"""Run one episode of a policy on a `SimRobot` the way the console does, headless and unpaced.

Each tick: observe (and show the policy the observation), send the command the chunk schedule
(robot_io/chunks/schedule.py, the console session's own) gives for this tick, and when the
schedule wants the next chunk, infer it from this tick's observation. Its commands run from the
next tick: one tick of inference latency, an inference that takes less than a tick.
`latency_ticks` L > 1 plays a slower one as the console meets it: the chunk reaches the schedule
L ticks after its observation, the running plan goes on meanwhile, and the chunk takes over from
its step for that tick (the steps for the ticks in between are gone); the schedule measures that
delay and asks for the next chunk early by it, as in the console. Guided chunks (ChunkConfig.guided)
get the running plan as the console's runner gives it. Ticks with no command (the very first) hold
the current joint positions.

With an automatic operator watching, the operator's command replaces the policy's from the tick
it takes over to the end of the episode (as a person's takeover does in the console).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from robot_io.chunks.schedule import ChunkConfig, ChunkSchedule
from robot_io.policy import Policy, PolicyOutput, commands_after_observation, infer_with_guide
from robot_io.datasets.schema import SOURCE_HOLD, SOURCE_OPERATOR, SOURCE_POLICY
from robot_io.sim.auto_operator import AutoOperator
from robot_io.sim.conveyor_env import EpisodeSpec
from robot_io.sim.sim_robot import SimRobot

SETTLE_TICKS = 8  # the episode ends once a block has stayed in the bin this long

FrameCallback = Callable[[dict[str, Any], dict[str, float], str], None]  # observation, action, source
InferenceCallback = Callable[[int, PolicyOutput], None]  # the observation's tick, the policy's output


@dataclass(frozen=True)
class RolloutResult:
    episode: EpisodeSpec
    success: bool  # the scene's target block is in the bin
    ticks: int
    in_bin: tuple[str, ...]  # colours of the blocks in the bin at the end
    seconds: float  # simulated time


def run_episode(
    robot: SimRobot,
    policy: Policy,
    instruction: str | None = None,
    chunks: ChunkConfig | None = None,
    on_frame: FrameCallback | None = None,
    operator: AutoOperator | None = None,
    latency_ticks: int = 1,
    on_inference: InferenceCallback | None = None,
) -> RolloutResult:
    """Run the current scene (call `robot.reset_scene` first) until a block has settled in the
    bin or the time limit.

    instruction: None follows the scene's own instruction. chunks: how chunks run (None: the
    console's defaults). on_frame gets every tick's observation, the action sent and its source
    (SOURCE_POLICY, SOURCE_HOLD or SOURCE_OPERATOR). operator: watches every tick and, once it
    takes over, drives the rest of the episode. latency_ticks: ticks from an observation to its
    chunk's first command (>= 1). on_inference gets every inference's output (its foresight
    included) with the tick of the observation it was computed from, before that tick's on_frame.
    """
    if latency_ticks < 1:
        raise ValueError(f"latency_ticks must be >= 1, got {latency_ticks}")
    episode = robot.episode
    instruction = episode.instruction if instruction is None else instruction
    keys = list(robot.action_features)
    schedule = ChunkSchedule(chunks)
    policy.reset()
    in_flight: tuple[int, int, np.ndarray] | None = None  # an inference: the tick it lands, its observation's tick, its commands
    held: dict[str, float] | None = None
    in_bin_ticks = 0
    tick = 0
    while tick < robot.config.max_ticks and in_bin_ticks < SETTLE_TICKS:
        observation = robot.get_observation()
        policy.observe(observation)
        if in_flight is not None and in_flight[0] == tick:
            schedule.push(in_flight[2], obs_tick=in_flight[1])
            in_flight = None
        planned, _ = schedule.pop(tick)
        command = operator.get_action() if operator is not None else None  # it watches every tick
        if command is not None and operator.reason:
            action, source = command, SOURCE_OPERATOR
        elif planned is not None:
            action, source = dict(zip(keys, map(float, planned))), SOURCE_POLICY
        else:
            action = held or {key: float(observation[key]) for key in keys}
            source = SOURCE_HOLD
        if source != SOURCE_OPERATOR and schedule.wants_chunk(tick):
            output = infer_with_guide(policy, observation, instruction, schedule.guide(tick))
            if on_inference is not None:
                on_inference(tick, output)
            in_flight = (tick + latency_ticks, tick, commands_after_observation(policy, output.actions))  # (n, action_dim)
        if on_frame is not None:
            on_frame(observation, action, source)
        held = robot.send_action(action)
        in_bin_ticks = in_bin_ticks + 1 if robot.env.blocks_in_bin() else 0
        tick += 1
    env = robot.env
    return RolloutResult(episode, env.is_success(), tick, env.blocks_in_bin(), env.time)
