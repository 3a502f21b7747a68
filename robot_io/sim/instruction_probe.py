"""Does the policy do what it is told? Probe it at the first tick of held-out scenes.

At the start of an episode nothing but the instruction says which block to pick (later the arm's
own motion gives it away, so a policy can copy its past and ignore the words). For each scene
and each colour on the belt, the policy plans for "pick up the <colour> block" and the scripted
expert plans for every colour; the probe counts how often the policy's plan lies nearest the
expert's plan for the colour it was told. An instruction-blind policy scores about
1 / (blocks per scene); one that follows the words, 100%.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robot_io.policy import Policy
from robot_io.sim.conveyor_env import INSTRUCTION_TEMPLATE
from robot_io.sim.scripted_expert import ScriptedExpert, ScriptedExpertConfig
from robot_io.sim.sim_robot import SIM_STATE_KEY, SimRobot

PROBE_STEPS = 30  # 2 s at 15 Hz: long enough for the reach toward different blocks to part


def probe_instructions(robot: SimRobot, policy: Policy, seeds: list[int], steps: int = PROBE_STEPS) -> dict[str, Any]:
    """JSON-ready: probes, how many had the named colour's expert plan nearest, and the chance level."""
    expert = ScriptedExpert(ScriptedExpertConfig(chunk_steps=steps))
    hits = probes = 0
    chance = []
    for seed in seeds:
        robot.reset_scene(seed)
        observation = robot.get_observation()
        colors = observation[SIM_STATE_KEY].block_colors
        expert_plans = {color: _plan(expert, observation, color, steps) for color in colors}  # colour -> (steps, A)
        for told in colors:
            plan = _plan(policy, observation, told, steps)
            errors = {color: float(np.mean((plan - expected) ** 2)) for color, expected in expert_plans.items()}
            hits += min(errors, key=errors.get) == told
            probes += 1
        chance.append(1 / len(colors))
    return {"scenes": len(seeds), "probes": probes, "named_nearest": hits,
            "named_nearest_share": hits / probes if probes else None,
            "chance_share": float(np.mean(chance)) if chance else None, "steps": steps}


def format_probe(result: dict[str, Any]) -> str:
    return (f"instruction probe ({result['scenes']} scenes, first tick, {result['steps']}-step plans): "
            f"plan nearest the named block's in {result['named_nearest']}/{result['probes']} "
            f"({100 * result['named_nearest_share']:.0f}%; instruction-blind: {100 * result['chance_share']:.0f}%)")


def _plan(policy: Policy, observation: dict[str, Any], color: str, steps: int) -> np.ndarray:
    policy.reset()
    policy.observe(observation)
    actions = policy.infer(observation, INSTRUCTION_TEMPLATE.format(color=color)).actions
    if len(actions) < steps:
        raise ValueError(f"{policy.name} plans {len(actions)} steps; the probe compares {steps}")
    return actions[:steps]
