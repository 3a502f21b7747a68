"""A privileged scripted policy: intercept the named block on the moving belt and drop it in the bin.

It reads `observation["sim_state"]` (true block positions and velocities) and decides from the
observed world which move comes next: line up above the block, descend while tracking it,
close, lift, carry, release, retreat. There are no stored phases, so skipped chunk steps, late
inference or an operator takeover never confuse it, and a missed grasp is simply retried.

A chunk is planned by rolling that same decision rule forward on a predicted world: the block
rides the belt at its observed velocity, the hand reaches every commanded pose, a gripper
closing around the block holds it. The chunk computed from the observation of tick t is for
ticks t+1, t+2, ... (the console's one tick of inference latency), so planning starts from the
world at t+1: the block one tick further on, the hand where the command of tick t puts it. That
command is not in the observation yet; the expert remembers its previous chunk and uses that
chunk's step for tick t, provided the observed command of tick t-1 shows its chunk was being
followed (otherwise it assumes the robot holds). Each command aims where the block will be once
that command has been carried out.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from robot_io.policy import Policy, PolicyOutput
from robot_io.sim import scene
from robot_io.sim.arm_kinematics import ArmKinematics, Pose, down_rotation
from robot_io.sim.conveyor_env import SimState
from robot_io.sim.sim_robot import SIM_STATE_KEY

# Gripper closure (0 open .. 1 closed) at which the pads touch a block's sides.
BLOCK_CONTACT_CLOSURE = (scene.FINGER_OPEN_Y - scene.FINGER_PAD_HALF[1] - scene.BLOCK_HALF) / scene.FINGER_TRAVEL
MIN_TURN_RADIUS = 0.1  # m: below this, turning about the base is limited as if at this radius
COMMAND_MATCH = 1e-5  # an observed command equal to a planned one within this was that plan's
# With the foresight setting's cover, a block is grasped only once its centre is this far past the
# cover's end: the pads (and the wrist camera's view of the grasp) clear the cover.
COVER_GRASP_CLEARANCE = scene.FINGER_PAD_HALF[0] + 0.01


@dataclass(frozen=True)
class ScriptedExpertConfig:
    chunk_steps: int = 10  # commands per inference
    grasp_height: float = 0.008  # m, end effector above the block centre when grasping (pads clear the belt)
    hover_height: float = 0.07  # m above the grasp height while lining up
    carry_height: float = 0.24  # m, end-effector height while carrying (the block clears the bin walls)
    release_height: float = 0.17  # m, end-effector height above the bin when letting go
    max_xy_step: float = 0.028  # m per tick in the horizontal plane (0.42 m/s at 15 Hz)
    max_z_step: float = 0.02  # m per tick vertically
    max_yaw_step: float = 0.12  # rad per tick
    max_joint_step: float = 0.15  # rad per tick; below the console's safety clamp so it never bites
    gripper_step: float = 0.19  # closure change per tick; also below the console clamp (0.2)
    align_tolerance: float = 0.01  # m: descend once the hand is this close above the block
    yaw_tolerance: float = 0.08  # rad: ... and turned this close to the block's faces
    abort_tolerance: float = 0.025  # m: while below hover height, keep descending unless off by more
    height_tolerance: float = 0.006  # m
    place_tolerance: float = 0.02  # m: how close above the bin centre counts as there
    reach_x_range: tuple[float, float] = (-0.40, 0.40)  # m along the belt where the arm can grasp
    open_closure: float = 0.15  # measured closure below this counts as open
    empty_closure: float = 0.9  # measured closure above this means the fingers closed on nothing

    def __post_init__(self) -> None:
        def fail(message: str) -> None:
            raise ValueError(f"ScriptedExpertConfig: {message}")

        if not 1 <= self.chunk_steps <= 50:
            fail(f"chunk_steps must be between 1 and 50, got {self.chunk_steps}")
        positive = ("hover_height", "max_xy_step", "max_z_step", "max_yaw_step", "max_joint_step", "gripper_step",
                    "align_tolerance", "yaw_tolerance", "height_tolerance", "place_tolerance")
        for name in positive:
            if not getattr(self, name) > 0:
                fail(f"{name} must be > 0, got {getattr(self, name)}")
        if not self.abort_tolerance >= self.align_tolerance:
            fail(f"abort_tolerance ({self.abort_tolerance}) must be >= align_tolerance ({self.align_tolerance})")
        if not self.carry_height > self.release_height > scene.BIN_WALL_HEIGHT + scene.BLOCK_HALF:
            fail(f"need carry_height > release_height > {scene.BIN_WALL_HEIGHT + scene.BLOCK_HALF} m (bin wall "
                 f"plus half a block), got {self.carry_height}, {self.release_height}")
        if not self.reach_x_range[0] < self.reach_x_range[1]:
            fail(f"reach_x_range must be (low, high) with low < high, got {self.reach_x_range}")
        if not 0 < self.open_closure < BLOCK_CONTACT_CLOSURE < self.empty_closure < 1:
            fail(f"need 0 < open_closure < {BLOCK_CONTACT_CLOSURE:.2f} (closure on a block) < empty_closure < 1, "
                 f"got {self.open_closure}, {self.empty_closure}")


@dataclass(frozen=True)
class _World:
    """What the planner believes at the start of one commanded tick."""

    ee: np.ndarray  # (3,) end-effector position
    yaw: float  # end-effector yaw
    joints: np.ndarray  # arm joint command (the hand is assumed to follow it within the tick)
    gripper: float  # closure, 0 open .. 1 closed
    gripper_command: float
    block: np.ndarray  # (3,) target block position
    block_velocity: np.ndarray  # (3,)
    block_yaw: float
    grasped: bool
    in_bin: bool


def parse_target_color(instruction: str) -> str:
    """The one block colour named in `instruction`; ValueError if it names none or several."""
    words = re.findall(r"[a-z]+", instruction.lower())
    named = list(dict.fromkeys(w for w in words if w in scene.BLOCK_RGBA))
    if not named:
        raise ValueError(f"The instruction {instruction!r} names no block colour; "
                         f"say which block to pick: {', '.join(scene.BLOCK_RGBA)}.")
    if len(named) > 1:
        raise ValueError(f"The instruction {instruction!r} names several colours ({', '.join(named)}); "
                         "name exactly one block to pick.")
    return named[0]


def wrap_angle(angle: float) -> float:
    """The angle in [-pi, pi)."""
    return (angle + math.pi) % (2 * math.pi) - math.pi


def _grasp_yaw(block_yaw: float) -> float:
    """Of the four yaws that put the pads on a cube's faces, the one nearest 0: fingers close
    across the belt, so neighbouring blocks on the belt stay clear of them."""
    quarter = math.pi / 2
    return (block_yaw + quarter / 2) % quarter - quarter / 2


def _over_bin(position: np.ndarray) -> bool:
    return bool(np.all(np.abs(position[:2] - scene.BIN_CENTER_XY) < scene.BIN_INNER_HALF))


class ScriptedExpert(Policy):
    name = "scripted_expert"
    chunk_starts_next_tick = True  # it plans from the world at t+1 (the module's docstring)

    def __init__(self, config: ScriptedExpertConfig | None = None) -> None:
        self.config = config or ScriptedExpertConfig()
        self._kinematics = ArmKinematics.standalone()  # its own: infer runs beside the sim's thread
        self._home = np.array(scene.HOME_EE_POSITION)
        self._planned: dict[int, np.ndarray] = {}  # tick -> command of the latest chunks
        self._cover_x: tuple[float, float] | None = None  # the scene's cover (SimState.cover_x)

    def reset(self) -> None:
        self._planned = {}

    def infer(self, observation: dict[str, Any], instruction: str) -> PolicyOutput:
        started = time.perf_counter()
        state = observation.get(SIM_STATE_KEY)
        if not isinstance(state, SimState):
            raise ValueError(f"ScriptedExpert needs observation[{SIM_STATE_KEY!r}] (a SimRobot observation); "
                             f"got {type(state).__name__}")
        color = parse_target_color(instruction)
        if color not in state.block_colors:
            raise ValueError(f"There is no {color} block on the belt (blocks: {', '.join(state.block_colors)}).")
        dt = state.control_period
        tick = round(state.time / dt)
        self._cover_x = state.cover_x
        world = self._advance_block(self._observe(state, state.block_colors.index(color), tick), dt)
        actions = np.empty((self.config.chunk_steps, len(scene.ARM_JOINTS) + 1), dtype=np.float32)
        for step in range(self.config.chunk_steps):
            world, actions[step] = self._plan_tick(world, dt)
        in_flight = {tick: self._planned[tick]} if tick in self._planned else {}
        self._planned = in_flight | {tick + 1 + step: action for step, action in enumerate(actions)}
        return PolicyOutput(actions=actions, timings_ms={"total": (time.perf_counter() - started) * 1e3})

    # --- world model -------------------------------------------------------------------------
    def _command_in_flight(self, state: SimState, tick: int) -> np.ndarray:
        """The command the robot carries out during `tick`: our own plan for it if the robot was
        following our plan a tick earlier, else the last command observed (a hold)."""
        observed = np.append(state.joint_targets, state.gripper_command)
        previous, current = self._planned.get(tick - 1), self._planned.get(tick)
        if previous is not None and current is not None and np.allclose(previous, observed, atol=COMMAND_MATCH):
            return current.astype(float)
        return observed

    def _observe(self, state: SimState, index: int, tick: int) -> _World:
        command = self._command_in_flight(state, tick)
        reached = self._kinematics.forward(command[:-1])
        return _World(
            ee=reached.position,
            yaw=reached.yaw,
            joints=command[:-1],
            gripper=state.gripper,
            gripper_command=float(command[-1]),
            block=np.array(state.block_positions[index]),
            block_velocity=np.array(state.block_velocities[index]),
            block_yaw=float(state.block_yaws[index]),
            grasped=state.grasped_index == index,
            in_bin=state.in_bin[index],
        )

    @staticmethod
    def _advance_block(world: _World, dt: float) -> _World:
        """The world `dt` later as far as the block goes: a free block rides on at its velocity."""
        if world.grasped or world.in_bin:
            return world
        return replace(world, block=world.block + world.block_velocity * dt)

    # --- waypoints and steps another driver may follow (the automatic operator's recovery) -----
    def approach_pose(self, state: SimState, index: int) -> tuple[np.ndarray, float]:
        """Where this expert lines up above block `index` before descending on it, for the block
        where it will be at the end of this tick: (end-effector position (3,), yaw)."""
        c = self.config
        block = np.asarray(state.block_positions[index]) + np.asarray(state.block_velocities[index]) * state.control_period
        x = float(np.clip(block[0], *c.reach_x_range))
        return np.array([x, block[1], block[2] + c.grasp_height + c.hover_height]), _grasp_yaw(float(state.block_yaws[index]))

    def step_toward(self, state: SimState, target: np.ndarray, target_yaw: float, gripper_goal: float) -> np.ndarray:
        """One command (joints + gripper) from the command being carried out toward an end-effector
        target, at this expert's speeds."""
        joints = np.asarray(state.joint_targets, dtype=float)
        reached = self._kinematics.forward(joints)
        joints, command = self._step(joints, state.gripper_command, reached.position, reached.yaw, target, target_yaw, gripper_goal)
        return np.append(joints, command)

    def _step(self, joints: np.ndarray, gripper_command: float, position: np.ndarray, yaw: float,
              target: np.ndarray, target_yaw: float, gripper_goal: float) -> tuple[np.ndarray, float]:
        """(joints, gripper command) one tick from (position, yaw) toward the target, speeds limited."""
        c = self.config
        position, yaw = self._limited_move(position, yaw, target, target_yaw)
        solved = self._kinematics.solve(Pose(position, down_rotation(yaw)), joints)
        joints = joints + np.clip(solved - joints, -c.max_joint_step, c.max_joint_step)
        return joints, gripper_command + float(np.clip(gripper_goal - gripper_command, -c.gripper_step, c.gripper_step))

    def _plan_tick(self, world: _World, dt: float) -> tuple[_World, np.ndarray]:
        """Decide one command, then predict the world once it has been carried out."""
        c = self.config
        target, target_yaw, gripper_goal = self._decide(world, dt)
        joints, command = self._step(world.joints, world.gripper_command, world.ee, world.yaw, target, target_yaw, gripper_goal)
        reached = self._kinematics.forward(joints)

        grasped, in_bin = world.grasped, world.in_bin
        if not grasped and gripper_goal > world.gripper and command >= BLOCK_CONTACT_CLOSURE + c.gripper_step / 2:
            grasped = True  # squeezing the block (the rule only closes when lined up around it)
        elif grasped and command < BLOCK_CONTACT_CLOSURE:
            grasped, in_bin = False, _over_bin(reached.position)  # let go (the rule only opens above the bin)
        predicted = replace(
            world, ee=reached.position, yaw=reached.yaw, joints=joints,
            gripper=BLOCK_CONTACT_CLOSURE if grasped else command, gripper_command=command,
            block=reached.position - (0.0, 0.0, c.grasp_height) if grasped else world.block,
            grasped=grasped, in_bin=in_bin,
        )
        return self._advance_block(predicted, dt), np.append(joints, command)

    # --- the decision rule -------------------------------------------------------------------
    def _decide(self, world: _World, dt: float) -> tuple[np.ndarray, float, float]:
        """(end-effector target, its yaw, gripper goal) for the tick starting in `world`: the hand
        is judged against the block now, and aims where the block will be at the tick's end."""
        c = self.config
        block = self._advance_block(world, dt).block
        bin_xy = np.array(scene.BIN_CENTER_XY)
        if world.in_bin or (not world.grasped and _over_bin(world.block)):
            return self._home, scene.HOME_EE_YAW, 0.0  # done (or the block is falling in): retreat

        if world.grasped:
            if np.linalg.norm(world.ee[:2] - bin_xy) <= c.place_tolerance:
                lowered = abs(world.ee[2] - c.release_height) < c.height_tolerance
                return np.array([*bin_xy, c.release_height]), world.yaw, 0.0 if lowered else 1.0  # lower, let go
            if world.ee[2] < c.carry_height - c.height_tolerance and not _over_bin(world.ee):
                return np.array([*world.ee[:2], c.carry_height]), world.yaw, 1.0  # lift straight up
            return np.array([*bin_xy, c.carry_height]), world.yaw, 1.0  # carry

        grasp_z = block[2] + c.grasp_height
        hover_z = grasp_z + c.hover_height
        yaw = _grasp_yaw(world.block_yaw)
        low = world.ee[2] < hover_z - c.height_tolerance
        off_by = float(np.linalg.norm(world.ee[:2] - world.block[:2]))
        turned = abs(wrap_angle(world.yaw - yaw)) < c.yaw_tolerance
        aligned = turned and off_by < (c.abort_tolerance if low else c.align_tolerance)
        x = float(np.clip(block[0], *c.reach_x_range))  # wait at the edge of reach for a far block
        at_grasp_height = abs(world.ee[2] - grasp_z) < c.height_tolerance
        if self._cover_x is not None and block[0] < self._cover_x[1] + COVER_GRASP_CLEARANCE:
            return np.array([x, block[1], hover_z]), yaw, 0.0  # not out from under the cover yet: wait above it
        if aligned and at_grasp_height and world.gripper < c.empty_closure:
            return np.array([x, block[1], grasp_z]), yaw, 1.0  # close on it
        if world.gripper > c.open_closure:
            return np.array([x, block[1], hover_z]), yaw, 0.0  # missed: open and back up
        if aligned:
            return np.array([x, block[1], grasp_z]), yaw, 0.0  # descend, tracking the block
        return np.array([x, block[1], hover_z]), yaw, 0.0  # line up above it

    def _limited_move(self, position: np.ndarray, yaw: float, target: np.ndarray, target_yaw: float):
        """One tick toward the target at the configured speeds. Horizontal motion is planned in
        polar coordinates about the arm's base, so long moves sweep around the base instead of
        cutting close to it where the arm would have to fold up."""
        c = self.config
        radius, angle = float(np.hypot(*position[:2])), float(np.arctan2(position[1], position[0]))
        target_radius, target_angle = float(np.hypot(*target[:2])), float(np.arctan2(target[1], target[0]))
        radial = float(np.clip(target_radius - radius, -c.max_xy_step, c.max_xy_step))
        max_turn = c.max_xy_step / max(radius, MIN_TURN_RADIUS)
        turn = float(np.clip(wrap_angle(target_angle - angle), -max_turn, max_turn))
        radius, angle = radius + radial, angle + turn
        z = position[2] + float(np.clip(target[2] - position[2], -c.max_z_step, c.max_z_step))
        yaw = yaw + float(np.clip(wrap_angle(target_yaw - yaw), -c.max_yaw_step, c.max_yaw_step))
        return np.array([radius * math.cos(angle), radius * math.sin(angle), z]), yaw
