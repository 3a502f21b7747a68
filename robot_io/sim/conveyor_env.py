"""The conveyor pick-and-place simulation: seeded episodes, physics, rendering, kinematics.

`ConveyorEnv` is not thread-safe: one thread at a time drives it (physics and rendering). The
renderer is created lazily, on first use, in the thread that renders, and its GL context is
released after every frame, so a later driving thread (a restarted control loop) can render
and `close` works from any thread.
"""

from __future__ import annotations

import argparse

import math
import os
from dataclasses import dataclass

import mujoco
import numpy as np

from robot_io.sim import scene
from robot_io.sim.foresight_setting import ForesightSetting, SpeedChange
from robot_io.sim.arm_kinematics import ArmKinematics, Pose, apply_delta, down_rotation

INSTRUCTION_TEMPLATE = "pick up the {color} block and put it in the bin"
MAX_IMAGE_SIZE = 2048  # pixels, per side
MIN_BLOCK_GAP = 0.03  # m between neighbouring blocks, so fingers fit beside the target
HOME_SEARCH_START = np.array([1.0, 0.0, 0.4, 0.0, -0.4, -1.0])  # rad, near the home pose: seeds its IK


def parse_speed_range(text: str) -> tuple[float, float]:
    """"LOW,HIGH" in m/s (an argparse type) -> (low, high)."""
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a belt speed range LOW,HIGH in m/s, got {text!r}") from err
    return low, high


@dataclass(frozen=True)
class ConveyorSimConfig:
    fps: float = 15.0  # control rate: one `step` advances the physics by 1 / fps seconds
    image_height: int = 224
    image_width: int = 224
    cameras: tuple[str, ...] = scene.CAMERA_NAMES  # () renders nothing (state-only, fast evaluation)
    belt_speed_range: tuple[float, float] = (0.03, 0.15)  # m/s, drawn uniformly per episode
    num_blocks: int = 4
    block_spacing_range: tuple[float, float] = (0.08, 0.12)  # m, centre to centre along the belt
    first_block_x_range: tuple[float, float] = (-0.32, -0.22)  # m, where the leading block starts
    block_lateral_jitter: float = 0.02  # m, across the belt
    block_yaw_jitter: float = 0.3  # rad
    colors: tuple[str, ...] = ("red", "green", "blue", "yellow")  # blocks get distinct colours
    physics_timestep: float = 0.002  # s; rounded so a whole number of substeps fills 1 / fps
    episode_time_limit_s: float = 20.0
    start_joint_jitter: float = 0.05  # rad, per arm joint around the home pose
    appearance_jitter: float = 0.0  # 0..1: relative variation of light and floor/belt colours
    foresight: ForesightSetting = ForesightSetting()  # a cover, a speed change (off: the standard conveyor)

    def __post_init__(self) -> None:
        def fail(message: str) -> None:
            raise ValueError(f"ConveyorSimConfig: {message}")

        if not self.fps > 0:
            fail(f"fps must be > 0, got {self.fps}")
        for name in ("image_height", "image_width"):
            size = getattr(self, name)
            if not (isinstance(size, int) and 8 <= size <= MAX_IMAGE_SIZE):
                fail(f"{name} must be an integer between 8 and {MAX_IMAGE_SIZE}, got {size!r}")
        unknown = [c for c in self.cameras if c not in scene.CAMERA_NAMES]
        if unknown or len(set(self.cameras)) != len(self.cameras):
            fail(f"cameras must be distinct names from {scene.CAMERA_NAMES}, got {self.cameras}")
        low, high = self.belt_speed_range
        if not 0 < low <= high <= scene.MAX_BELT_SPEED:
            fail(f"belt_speed_range must satisfy 0 < low <= high <= {scene.MAX_BELT_SPEED} m/s, got {self.belt_speed_range}")
        bad_colors = [c for c in self.colors if c not in scene.BLOCK_RGBA]
        if bad_colors or len(set(self.colors)) != len(self.colors):
            fail(f"colors must be distinct names from {sorted(scene.BLOCK_RGBA)}, got {self.colors}")
        if not 1 <= self.num_blocks <= len(self.colors):
            fail(f"num_blocks must be between 1 and the number of colors ({len(self.colors)}), got {self.num_blocks}")
        low, high = self.block_spacing_range
        if not 2 * scene.BLOCK_HALF + MIN_BLOCK_GAP <= low <= high:
            fail(f"block_spacing_range must satisfy {2 * scene.BLOCK_HALF + MIN_BLOCK_GAP} <= low <= high "
                 f"(blocks {2 * scene.BLOCK_HALF} m wide plus room for fingers), got {self.block_spacing_range}")
        first_low, first_high = self.first_block_x_range
        last_x = first_low - (self.num_blocks - 1) * high
        if not (first_low <= first_high <= scene.BELT_X_END - scene.BLOCK_HALF
                and last_x >= scene.BELT_X_START + scene.BLOCK_HALF):
            fail(f"{self.num_blocks} blocks starting at x in {self.first_block_x_range} with spacing up to {high} m "
                 f"do not fit on the belt (x from {scene.BELT_X_START} to {scene.BELT_X_END})")
        if not 0 <= self.block_lateral_jitter <= scene.BELT_HALF_WIDTH - 2 * scene.BLOCK_HALF:
            fail(f"block_lateral_jitter must be between 0 and {scene.BELT_HALF_WIDTH - 2 * scene.BLOCK_HALF} m "
                 f"(blocks must stay on the belt), got {self.block_lateral_jitter}")
        if not 0 <= self.block_yaw_jitter <= math.pi / 4:
            fail(f"block_yaw_jitter must be between 0 and pi/4 rad, got {self.block_yaw_jitter}")
        if not 0 < self.physics_timestep <= self.control_period:
            fail(f"physics_timestep must be > 0 and <= the control period {self.control_period:.4f} s, "
                 f"got {self.physics_timestep}")
        if not self.episode_time_limit_s > 0:
            fail(f"episode_time_limit_s must be > 0, got {self.episode_time_limit_s}")
        if not 0 <= self.start_joint_jitter <= 0.5:
            fail(f"start_joint_jitter must be between 0 and 0.5 rad, got {self.start_joint_jitter}")
        if not 0 <= self.appearance_jitter < 1:
            fail(f"appearance_jitter must be in [0, 1), got {self.appearance_jitter}")
        if not isinstance(self.foresight, ForesightSetting):
            fail(f"foresight must be a ForesightSetting, got {type(self.foresight).__name__}")
        if self.foresight.changes_speed and not self.foresight.speed_change_after_max_s < self.episode_time_limit_s:
            fail(f"the belt speed change must begin within the episode ({self.episode_time_limit_s} s), "
                 f"got up to {self.foresight.speed_change_after_max_s} s")

    @property
    def control_period(self) -> float:
        return 1.0 / self.fps

    @property
    def substeps(self) -> int:
        return max(1, round(self.control_period / self.physics_timestep))

    @property
    def max_ticks(self) -> int:
        return math.ceil(self.episode_time_limit_s * self.fps)


def sim_config_or_exit(parser: argparse.ArgumentParser, **fields) -> "ConveyorSimConfig":
    """ConveyorSimConfig(**fields) for a command; one it refuses stops the command (parser.error) with the reason."""
    try:
        return ConveyorSimConfig(**fields)
    except ValueError as err:
        parser.error(str(err))


@dataclass(frozen=True)
class EpisodeSpec:
    seed: int
    belt_speed: float  # m/s
    colors: tuple[str, ...]  # block colours in belt order, the first to arrive first
    target_color: str
    instruction: str
    speed_change: SpeedChange | None = None  # the foresight setting's, None: the belt keeps its speed

    def describe_belt(self) -> str:
        """"belt 0.106 m/s", with its speed change when it has one."""
        change = self.speed_change
        later = f" -> {change.to_speed:.3f} m/s at {change.at_s:.1f} s" if change is not None else ""
        return f"belt {self.belt_speed:.3f} m/s{later}"


@dataclass(frozen=True)
class SimState:
    """A privileged snapshot of the world, for scripted experts (never recorded)."""

    time: float  # s since the episode started
    control_period: float  # s per control tick
    belt_speed: float  # m/s along +x
    block_colors: tuple[str, ...]
    block_positions: np.ndarray  # (blocks, 3) m
    block_velocities: np.ndarray  # (blocks, 3) m/s
    block_yaws: np.ndarray  # (blocks,) rad, heading of each block's x axis
    target_index: int  # the episode's target block (the instruction may name another)
    grasped_index: int | None  # the block touching both fingers, if any
    in_bin: tuple[bool, ...]  # per block
    ee_position: np.ndarray  # (3,) m
    ee_rotation: np.ndarray  # (3, 3) columns: the end effector's axes (see arm_kinematics)
    joint_positions: np.ndarray  # (arm joints,) rad
    joint_targets: np.ndarray  # (arm joints,) rad: the command being carried out
    gripper: float  # measured closure, 0 open .. 1 closed
    gripper_command: float  # the closure being commanded
    cover_x: tuple[float, float] | None = None  # (start, end) x of the foresight setting's cover, None: none

    @property
    def ee_yaw(self) -> float:
        return float(np.arctan2(self.ee_rotation[1, 0], self.ee_rotation[0, 0]))


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.array(array, dtype=float)
    array.flags.writeable = False
    return array


def _yaw_of_quat(quat: np.ndarray) -> float:
    w, x, y, z = quat
    return math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


class ConveyorEnv:
    def __init__(self, config: ConveyorSimConfig | None = None) -> None:
        self.config = config or ConveyorSimConfig()
        cfg = self.config
        timestep = cfg.control_period / cfg.substeps  # a whole number of substeps per tick
        xml = scene.build_scene_xml(cfg.num_blocks, timestep, max(cfg.image_height, cfg.image_width), cfg.foresight.cover_x)
        self.model = mujoco.MjModel.from_xml_string(xml)
        self.data = mujoco.MjData(self.model)
        self.kinematics = ArmKinematics(self.model)
        m = self.model

        slat_joints = [m.joint(f"slat_{i}").id for i in range(scene.NUM_SLATS)]
        self._slat_qpos = m.jnt_qposadr[slat_joints]
        self._slat_dof = m.jnt_dofadr[slat_joints]
        self._slat_offsets = np.arange(scene.NUM_SLATS) * scene.SLAT_PITCH  # along the belt loop
        block_joints = [m.joint(f"block_{i}").id for i in range(cfg.num_blocks)]
        self._block_qpos = m.jnt_qposadr[block_joints]
        self._block_dof = m.jnt_dofadr[block_joints]
        self._block_geoms = np.array([m.geom(f"block_{i}").id for i in range(cfg.num_blocks)])
        self._finger_geoms = (m.geom("finger_left").id, m.geom("finger_right").id)
        self._finger_qpos = m.jnt_qposadr[m.joint("finger_left").id]
        self._arm_qpos = m.jnt_qposadr[[m.joint(j).id for j in scene.ARM_JOINTS]]
        self._arm_ctrl = np.array([m.actuator(j).id for j in scene.ARM_JOINTS])
        self._gripper_ctrl = m.actuator("gripper").id
        self._light = m.light("key").id
        self._appearance_materials = [m.material(name).id for name in ("floor", "slat", "belt_frame")]
        self._base_mat_rgba = m.mat_rgba[self._appearance_materials].copy()

        home = Pose(np.array(scene.HOME_EE_POSITION), down_rotation(scene.HOME_EE_YAW))
        self.home_joints = self.kinematics.solve(home, HOME_SEARCH_START)

        self._renderer: mujoco.Renderer | None = None
        self._episode: EpisodeSpec | None = None
        self._target_index = 0
        self._belt_speed = 0.0
        self._belt_travel = 0.0  # m the belt has moved this episode
        self._speed_change: SpeedChange | None = None

    # --- episode ---------------------------------------------------------------------------
    @property
    def episode(self) -> EpisodeSpec | None:
        return self._episode

    @property
    def time(self) -> float:
        return float(self.data.time)

    def reset(self, seed: int, target_index: int | None = None) -> EpisodeSpec:
        """Start the episode `seed`: everything random is drawn from it, in a fixed order.

        target_index picks another block of the same scene as the target (None: the seed's own),
        for demonstrations of one scene under different instructions."""
        cfg, m, d = self.config, self.model, self.data
        rng = np.random.default_rng(seed)
        belt_speed = float(rng.uniform(*cfg.belt_speed_range))
        colors = tuple(str(c) for c in rng.choice(cfg.colors, size=cfg.num_blocks, replace=False))
        drawn_target = int(rng.integers(cfg.num_blocks))  # drawn either way: the rest of the scene stays the seed's
        if target_index is not None and not 0 <= target_index < cfg.num_blocks:
            raise ValueError(f"target_index must be between 0 and {cfg.num_blocks - 1}, got {target_index}")
        target_index = drawn_target if target_index is None else target_index
        first_x = rng.uniform(*cfg.first_block_x_range)
        gaps = rng.uniform(*cfg.block_spacing_range, size=cfg.num_blocks - 1)
        xs = first_x - np.concatenate([[0.0], np.cumsum(gaps)])
        ys = scene.BELT_CENTER_Y + rng.uniform(-cfg.block_lateral_jitter, cfg.block_lateral_jitter, cfg.num_blocks)
        yaws = rng.uniform(-cfg.block_yaw_jitter, cfg.block_yaw_jitter, cfg.num_blocks)
        joint_jitter = rng.uniform(-cfg.start_joint_jitter, cfg.start_joint_jitter, len(scene.ARM_JOINTS))
        light_scale = 1 + rng.uniform(-cfg.appearance_jitter, cfg.appearance_jitter)
        color_scale = 1 + rng.uniform(-cfg.appearance_jitter, cfg.appearance_jitter,
                                      (len(self._appearance_materials), 3))

        mujoco.mj_resetData(m, d)
        for i in range(cfg.num_blocks):
            adr = self._block_qpos[i]
            d.qpos[adr : adr + 3] = (xs[i], ys[i], scene.BLOCK_REST_Z)
            d.qpos[adr + 3 : adr + 7] = (math.cos(yaws[i] / 2), 0.0, 0.0, math.sin(yaws[i] / 2))
            d.qvel[self._block_dof[i]] = belt_speed  # already riding the belt: no initial slip
            m.geom_rgba[self._block_geoms[i]] = scene.BLOCK_RGBA[colors[i]]
        arm = np.clip(self.home_joints + joint_jitter, *self.kinematics.limits.T)
        d.qpos[self._arm_qpos] = arm
        d.ctrl[self._arm_ctrl] = arm
        d.ctrl[self._gripper_ctrl] = 0.0
        m.light_diffuse[self._light] = scene.LIGHT_DIFFUSE * light_scale
        m.mat_rgba[self._appearance_materials, :3] = np.clip(self._base_mat_rgba[:, :3] * color_scale, 0, 1)

        self._belt_speed, self._belt_travel, self._target_index = belt_speed, 0.0, target_index
        self._speed_change = cfg.foresight.speed_change(seed, belt_speed)  # its own random stream
        self._drive_belt()
        mujoco.mj_forward(m, d)
        self._episode = EpisodeSpec(
            seed=int(seed),
            belt_speed=belt_speed,
            colors=colors,
            target_color=colors[target_index],
            instruction=INSTRUCTION_TEMPLATE.format(color=colors[target_index]),
            speed_change=self._speed_change,
        )
        return self._episode

    # --- physics ---------------------------------------------------------------------------
    def _drive_belt(self) -> None:
        """Slats at the belt's current travel, moving at belt speed (they wrap around the loop)."""
        positions = (self._slat_offsets + self._belt_travel) % scene.BELT_LENGTH
        self.data.qpos[self._slat_qpos] = positions - self._slat_offsets
        self.data.qvel[self._slat_dof] = self._belt_speed

    def step(self, joint_targets: np.ndarray, gripper: float) -> None:
        """Advance exactly one control period toward the joint targets (clamped to the limits)
        and the gripper command (0 open .. 1 closed)."""
        if self._episode is None:
            raise RuntimeError("ConveyorEnv.step before reset(seed): there is no episode yet")
        d = self.data
        d.ctrl[self._arm_ctrl] = np.clip(joint_targets, *self.kinematics.limits.T)
        d.ctrl[self._gripper_ctrl] = float(np.clip(gripper, 0.0, 1.0)) * scene.FINGER_TRAVEL
        dt = self.model.opt.timestep
        for _ in range(self.config.substeps):
            if self._speed_change is not None:
                self._belt_speed = self._speed_change.speed(d.time)
            self._drive_belt()
            mujoco.mj_step(self.model, d)
            self._belt_travel += self._belt_speed * dt
        self._drive_belt()

    # --- reading the state -----------------------------------------------------------------
    @property
    def joint_limits(self) -> np.ndarray:
        """(arm joints, 2) rad."""
        return self.kinematics.limits.copy()

    def joint_positions(self) -> np.ndarray:
        return self.data.qpos[self._arm_qpos].copy()

    def joint_targets(self) -> np.ndarray:
        """The arm's current commanded joint positions."""
        return self.data.ctrl[self._arm_ctrl].copy()

    def gripper_closure(self) -> float:
        """Measured finger closure: 0 fully open, 1 fully closed (about 0.55 on a block)."""
        return float(self.data.qpos[self._finger_qpos] / scene.FINGER_TRAVEL)

    def gripper_command(self) -> float:
        return float(self.data.ctrl[self._gripper_ctrl] / scene.FINGER_TRAVEL)

    def ee_pose(self) -> Pose:
        return self.kinematics.forward(self.joint_positions())

    def block_positions(self) -> np.ndarray:
        return np.array([self.data.qpos[a : a + 3] for a in self._block_qpos])

    def _in_bin(self) -> np.ndarray:
        offset = self.block_positions() - (*scene.BIN_CENTER_XY, 0.0)
        inside = np.all(np.abs(offset[:, :2]) < scene.BIN_INNER_HALF, axis=1)
        return inside & (offset[:, 2] < scene.BIN_WALL_HEIGHT)

    def _grasped_index(self) -> int | None:
        contacts = self.data.contact.geom[: self.data.ncon]
        for i, geom in enumerate(self._block_geoms):
            touching = contacts[(contacts == geom).any(axis=1)]
            if all((touching == finger).any() for finger in self._finger_geoms):
                return i
        return None

    def blocks_in_bin(self) -> tuple[str, ...]:
        colors = self._episode.colors if self._episode else ()
        return tuple(c for c, inside in zip(colors, self._in_bin()) if inside)

    def grasped_color(self) -> str | None:
        index = self._grasped_index()
        return None if index is None or self._episode is None else self._episode.colors[index]

    def is_success(self) -> bool:
        """The target-colour block lies in the bin (other blocks may be there too)."""
        return self._episode is not None and bool(self._in_bin()[self._target_index])

    def state(self) -> SimState:
        if self._episode is None:
            raise RuntimeError("ConveyorEnv.state before reset(seed): there is no episode yet")
        d = self.data
        pose = self.ee_pose()
        quats = [d.qpos[a + 3 : a + 7] for a in self._block_qpos]
        return SimState(
            time=self.time,
            control_period=self.config.control_period,
            belt_speed=self._belt_speed,
            block_colors=self._episode.colors,
            block_positions=_frozen(self.block_positions()),
            block_velocities=_frozen([d.qvel[a : a + 3] for a in self._block_dof]),
            block_yaws=_frozen([_yaw_of_quat(q) for q in quats]),
            target_index=self._target_index,
            grasped_index=self._grasped_index(),
            in_bin=tuple(bool(b) for b in self._in_bin()),
            ee_position=_frozen(pose.position),
            ee_rotation=_frozen(pose.rotation),
            joint_positions=_frozen(self.joint_positions()),
            joint_targets=_frozen(self.joint_targets()),
            gripper=self.gripper_closure(),
            gripper_command=self.gripper_command(),
            cover_x=self.config.foresight.cover_x,
        )

    # --- kinematics helpers ----------------------------------------------------------------
    def ik(self, position: np.ndarray, yaw: float, initial_joints: np.ndarray | None = None) -> np.ndarray:
        """Arm joint targets putting the end effector at `position`, pointing down at `yaw`."""
        start = self.joint_positions() if initial_joints is None else initial_joints
        return self.kinematics.solve(Pose(np.asarray(position, float), down_rotation(yaw)), start)

    def ee_delta(self, delta: np.ndarray) -> np.ndarray:
        """Arm joint targets for the commanded end-effector pose moved by (dx, dy, dz, droll,
        dpitch, dyaw). Starting from the command (not the measured pose) makes repeated small
        deltas add up exactly, with no drift from servo lag."""
        commanded = self.joint_targets()
        return self.kinematics.solve(apply_delta(self.kinematics.forward(commanded), delta), commanded)

    # --- rendering -------------------------------------------------------------------------
    def render(self, camera: str) -> np.ndarray:
        """uint8 RGB (image_height, image_width, 3) from `camera`."""
        if camera not in self.config.cameras:
            raise ValueError(f"unknown camera {camera!r}; this simulation renders {self.config.cameras}")
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, self.config.image_height, self.config.image_width)
        self._renderer.update_scene(self.data, camera)
        frame = self._renderer.render()
        _release_gl_context()
        return frame

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


def _release_gl_context() -> None:
    """Unbind the calling thread's GL context. EGL keeps a context bound to the thread that made
    it current, even after that thread ends, and refuses it to every other thread until released.
    Other backends need nothing. Costs nothing measurable."""
    if os.environ.get("MUJOCO_GL") == "egl":
        from OpenGL import EGL

        EGL.eglMakeCurrent(EGL.eglGetCurrentDisplay(), EGL.EGL_NO_SURFACE, EGL.EGL_NO_SURFACE, EGL.EGL_NO_CONTEXT)
