"""The embedded default: a MuJoCo conveyor-belt pick-and-place simulation.

- `scene`: the MJCF (belt of slats, coloured blocks, bin, a six-joint arm with a parallel gripper,
  cameras `head`, `wrist`, `side`) and its geometry constants.
- `arm_kinematics`: forward kinematics and damped-least-squares IK of the arm.
- `conveyor_env`: `ConveyorSimConfig` and `ConveyorEnv` (seeded episodes, physics, rendering).
- `sim_robot`: `SimRobot` / `SimCamera`, the env behind the `Robot` / `Camera` interfaces.
- `scripted_expert`: `ScriptedExpert`, a privileged policy that intercepts the named block.
- `expert_rollout`, `evaluate_expert`, `collect`: run, measure and record the expert.
"""

import os

# Offscreen rendering without a display. It must be set before `mujoco` is first imported, and
# every module of this package is imported after this file, so this is the one place for it.
os.environ.setdefault("MUJOCO_GL", "egl")
