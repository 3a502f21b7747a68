"""Run one episode of a policy on a `SimRobot` the way the console does, headless and unpaced.

Each tick: observe (and show the policy the observation), send the planned command for this
tick, and when the running chunk has had `execute_horizon` steps (or runs out) ask the policy for
the next chunk from this tick's observation. Its commands run from the next tick
(robot_io.policy.commands_after_observation): one tick of inference latency, an inference that
takes less than a tick. `latency_ticks` L > 1 plays a slower one as the console meets it: the
running plan goes on for L ticks, then the chunk takes over from its step for that tick (the
steps for the ticks in between are gone), and its `execute_horizon` steps count from there, as
the console's chunk queue counts them. A chunk takes over from what remains of the running plan
as the queue does (`blend`, robot_io/chunks/blending.py). Ticks with no command (the very first)
hold the current joint positions.

With an automatic operator watching, the operator's command replaces the policy's from the tick
it takes over to the end of the episode (as a person's takeover does in the console).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from robot_io.chunks.blending import BlendConfig, Plan, blend_into_plan
from robot_io.policy import DEFAULT_EXECUTE_HORIZON, Policy, commands_after_observation
from robot_io.datasets.schema import SOURCE_HOLD, SOURCE_OPERATOR, SOURCE_POLICY
from robot_io.sim.auto_operator import AutoOperator
from robot_io.sim.conveyor_env import EpisodeSpec
from robot_io.sim.sim_robot import SimRobot

SETTLE_TICKS = 8  # the episode ends once a block has stayed in the bin this long

FrameCallback = Callable[[dict[str, Any], dict[str, float], str], None]  # observation, action, source


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
    execute_horizon: int = DEFAULT_EXECUTE_HORIZON,
    on_frame: FrameCallback | None = None,
    operator: AutoOperator | None = None,
    blend: BlendConfig | None = None,
    latency_ticks: int = 1,
) -> RolloutResult:
    """Run the current scene (call `robot.reset_scene` first) until a block has settled in the
    bin or the time limit.

    instruction: None follows the scene's own instruction. on_frame gets every tick's
    observation, the action sent and its source (SOURCE_POLICY, SOURCE_HOLD or SOURCE_OPERATOR).
    operator: watches every tick and, once it takes over, drives the rest of the episode.
    blend: how a new chunk takes over from the running plan; None: the console's default.
    latency_ticks: ticks from an observation to its chunk's first command (>= 1).
    """
    if latency_ticks < 1:
        raise ValueError(f"latency_ticks must be >= 1, got {latency_ticks}")
    episode = robot.episode
    instruction = episode.instruction if instruction is None else instruction
    keys = list(robot.action_features)
    blend = blend if blend is not None else BlendConfig()
    policy.reset()
    plan: Plan | None = None  # the commands from plan.start_tick on: the newest chunk, blended
    pending: tuple[int, np.ndarray] | None = None  # a chunk being inferred: the tick it takes over, its commands
    held: dict[str, float] | None = None
    in_bin_ticks = 0
    tick = 0
    while tick < robot.config.max_ticks and in_bin_ticks < SETTLE_TICKS:
        observation = robot.get_observation()
        policy.observe(observation)
        if pending is not None and pending[0] == tick:
            plan, _ = blend_into_plan(plan, tick, pending[1], blend)
            pending = None
        planned = plan.action_for(tick) if plan is not None else None
        command = operator.get_action() if operator is not None else None  # it watches every tick
        if command is not None and operator.reason:
            action, source = command, SOURCE_OPERATOR
        elif planned is not None:
            action, source = dict(zip(keys, map(float, planned))), SOURCE_POLICY
        else:
            action = held or {key: float(observation[key]) for key in keys}
            source = SOURCE_HOLD
        step = tick - plan.start_tick if plan is not None else 0
        replan = pending is None and (plan is None or step + 1 >= min(execute_horizon, len(plan.actions)))
        if source != SOURCE_OPERATOR and replan:
            chunk = commands_after_observation(policy, policy.infer(observation, instruction).actions)
            pending = (tick + latency_ticks, chunk[latency_ticks - 1:])  # (n, action_dim) from that tick
        if on_frame is not None:
            on_frame(observation, action, source)
        held = robot.send_action(action)
        in_bin_ticks = in_bin_ticks + 1 if robot.env.blocks_in_bin() else 0
        tick += 1
    env = robot.env
    return RolloutResult(episode, env.is_success(), tick, env.blocks_in_bin(), env.time)

