"""The conveyor scene as MJCF, built in Python so sizes and counts stay in one place.

World frame: z up, metres. The arm stands at the origin; the belt runs along +x at y =
BELT_CENTER_Y; the bin sits beside the belt on the arm's side. Blocks ride the belt on contact
friction: the belt is a row of slats on slide joints whose positions and velocities the env sets
every physics substep (see `ConveyorEnv`), so nothing is ever teleported.

Collision groups (MuJoCo collides a pair when contype & conaffinity is non-zero either way):
slats (type 2) touch only blocks; blocks, fingers, palm, bin and floor (type 1) touch each other;
arm links are visual only, which keeps contacts few and the IK free of self-collision concerns.
"""

from __future__ import annotations

import numpy as np

# --- colours a block may have (RGBA); instructions name them -------------------------------------
BLOCK_RGBA: dict[str, tuple[float, float, float, float]] = {
    "red": (0.85, 0.12, 0.10, 1.0),
    "green": (0.15, 0.70, 0.20, 1.0),
    "blue": (0.12, 0.30, 0.90, 1.0),
    "yellow": (0.95, 0.85, 0.10, 1.0),
    "orange": (0.98, 0.50, 0.05, 1.0),
    "purple": (0.55, 0.20, 0.75, 1.0),
}

# --- belt ----------------------------------------------------------------------------------------
BELT_CENTER_Y = 0.30
BELT_HALF_WIDTH = 0.07
BELT_FRAME_MARGIN = 0.01  # m the belt's frame sticks out beside the slats
BELT_X_START, BELT_X_END = -0.75, 0.55  # blocks travel from start to end (+x)
BELT_TOP_Z = 0.06
SLAT_PITCH = 0.05  # slat spacing along the belt
SLAT_GAP = 0.004  # visible gap between slats
SLAT_HALF_THICKNESS = 0.005
NUM_SLATS = round((BELT_X_END - BELT_X_START) / SLAT_PITCH)
BELT_LENGTH = NUM_SLATS * SLAT_PITCH  # slats wrap around after this distance
MAX_BELT_SPEED = 0.5  # m/s; beyond this no arm of this size could intercept a block

# --- the cover of the foresight setting (robot_io/sim/foresight_setting.py) ---------------------
COVER_CLEARANCE = 0.01  # m between a block's top and the cover's roof
COVER_THICKNESS = 0.006  # m, roof and walls
COVER_RGBA = "0.30 0.34 0.42 1"

# --- blocks --------------------------------------------------------------------------------------
BLOCK_HALF = 0.02  # cube half side
BLOCK_MASS = 0.05  # kg
BLOCK_REST_Z = BELT_TOP_Z + BLOCK_HALF  # block centre height resting on the belt

# --- bin -----------------------------------------------------------------------------------------
BIN_CENTER_XY = (0.28, 0.0)
BIN_INNER_HALF = 0.075
BIN_WALL_HEIGHT = 0.07
BIN_WALL_HALF_THICKNESS = 0.005

# --- arm (lengths between joint axes) ------------------------------------------------------------
BASE_HEIGHT = 0.10  # pedestal top, where joint_1 (yaw) sits
SHOULDER_HEIGHT = 0.20  # joint_2 (pitch) height
UPPER_ARM = 0.32  # joint_2 -> joint_3 (elbow pitch)
FOREARM = 0.30  # joint_3 -> joint_5 (wrist pitch); joint_4 rolls the forearm
WRIST = 0.06  # joint_5 -> joint_6 (tool roll)
GRASP_DEPTH = 0.065  # joint_6 -> grasp point between the finger pads (the `ee` site)
ARM_JOINTS = ("joint_1", "joint_2", "joint_3", "joint_4", "joint_5", "joint_6")
ARM_JOINT_RANGES = (  # rad; elbow-up reaching configurations stay well inside
    (-3.0, 3.0),
    (-1.0, 1.6),
    (-1.0, 2.6),
    (-2.6, 2.6),
    (-2.4, 2.4),
    (-3.0, 3.0),
)
# Servo gains for a ~60 rad/s, roughly critically damped response (kp = I w^2, damping = 2 I w,
# with I the joint's typical reflected inertia): targets are reached within about one tick.
ARM_KP = (220.0, 430.0, 180.0, 40.0, 40.0, 40.0)  # N m / rad
ARM_DAMPING = (7.0, 14.0, 6.0, 1.3, 1.3, 1.3)  # N m s / rad
ARM_ARMATURE = 0.01  # rotor inertia: keeps the light wrist joints well-conditioned

# --- gripper: two slide fingers, one actuator, the right finger mirrors the left ----------------
FINGER_OPEN_Y = 0.05  # pad centre offset from the gripper axis when open
FINGER_PAD_HALF = (0.015, 0.006, 0.03)  # along x, closing direction y, height z
FINGER_TRAVEL = FINGER_OPEN_Y - FINGER_PAD_HALF[1]  # pads meet on the axis when fully closed
GRIPPER_KP = 300.0
FINGER_DAMPING = 3.0  # N s / m, about critical for the pads with GRIPPER_KP
GRIPPER_MAX_FORCE = 15.0  # N: a firm grip on a 50 g block that cannot crush anything
FINGER_FRICTION = 1.5  # high, like rubber pads

# --- arm rest pose (end effector, gripper pointing down) -----------------------------------------
HOME_EE_POSITION = (0.15, 0.25, 0.28)  # the upper arm leans forward, clear of the head camera
HOME_EE_YAW = 0.0

# --- cameras: name -> (position, look-at point, vertical field of view in degrees) ---------------
FIXED_CAMERAS = {
    "head": ((-0.10, -0.25, 0.95), (-0.08, 0.18, 0.03), 58.0),  # above and behind the arm
    "side": ((-0.05, 0.95, 0.45), (-0.05, 0.18, 0.12), 58.0),  # across the belt, facing the arm
}
WRIST_CAMERA_POSITION = (0.045, 0.0, -0.005)  # on the palm, in the tool frame (z: along the arm)
WRIST_CAMERA_LOOK_AT = (0.0, 0.0, -0.095)  # just below the finger tips
WRIST_CAMERA_FOVY = 75.0
CAMERA_NAMES = ("head", "wrist", "side")

LIGHT_DIFFUSE = 0.7  # the key light's brightness (appearance jitter scales it)
DEFAULT_TIMESTEP = 0.002  # s
DEFAULT_OFFSCREEN_SIZE = 640  # pixels per side of the offscreen buffer


def camera_xyaxes(position, target, up=(0.0, 0.0, 1.0)) -> str:
    """MJCF `xyaxes` for a camera at `position` looking at `target` (a camera looks along -z)."""
    forward = np.asarray(target, float) - np.asarray(position, float)
    z_axis = -forward / np.linalg.norm(forward)
    x_axis = np.cross(up, z_axis)
    x_axis /= np.linalg.norm(x_axis)
    y_axis = np.cross(z_axis, x_axis)
    return " ".join(f"{v:.5f}" for v in (*x_axis, *y_axis))


def _vec(values) -> str:
    return " ".join(f"{v:.5g}" for v in values)


def _slats_xml() -> str:
    half_x = SLAT_PITCH / 2 - SLAT_GAP / 2
    slats = []
    for i in range(NUM_SLATS):
        x = BELT_X_START + (i + 0.5) * SLAT_PITCH
        slats.append(
            f'<body name="slat_{i}" pos="{x:.4f} {BELT_CENTER_Y} {BELT_TOP_Z - SLAT_HALF_THICKNESS}">'
            f'<joint name="slat_{i}" type="slide" axis="1 0 0"/>'
            f'<geom type="box" size="{half_x:.4f} {BELT_HALF_WIDTH} {SLAT_HALF_THICKNESS}" '
            f'material="slat" contype="2" conaffinity="0" friction="1.0"/></body>'
        )
    return "\n".join(slats)


def _blocks_xml(num_blocks: int) -> str:
    # Parked far away; `ConveyorEnv.reset` places them on the belt and colours them.
    return "\n".join(
        f'<body name="block_{i}" pos="{i} -2 {BLOCK_HALF}"><freejoint name="block_{i}"/>'
        f'<geom name="block_{i}" type="box" size="{BLOCK_HALF} {BLOCK_HALF} {BLOCK_HALF}" '
        f'mass="{BLOCK_MASS}" rgba="1 1 1 1" contype="1" conaffinity="3" friction="1.0"/></body>'
        for i in range(num_blocks)
    )


def _bin_xml() -> str:
    x, y = BIN_CENTER_XY
    outer = BIN_INNER_HALF + BIN_WALL_HALF_THICKNESS
    half_h = BIN_WALL_HEIGHT / 2
    t = BIN_WALL_HALF_THICKNESS
    walls = [
        (f"{outer} 0 {half_h}", f"{t} {outer + t} {half_h}"),
        (f"{-outer} 0 {half_h}", f"{t} {outer + t} {half_h}"),
        (f"0 {outer} {half_h}", f"{outer + t} {t} {half_h}"),
        (f"0 {-outer} {half_h}", f"{outer + t} {t} {half_h}"),
    ]
    geoms = [f'<geom type="box" pos="0 0 {t}" size="{outer} {outer} {t}" material="bin"/>']
    geoms += [f'<geom type="box" pos="{p}" size="{s}" material="bin"/>' for p, s in walls]
    return f'<body name="bin" pos="{x} {y} 0">{"".join(geoms)}</body>'


def _arm_xml() -> str:
    r = ARM_JOINT_RANGES
    visual = 'contype="0" conaffinity="0" material="arm"'
    pad = _vec(FINGER_PAD_HALF)
    finger_geom = (f'type="box" size="{pad}" material="finger" friction="{FINGER_FRICTION}" '
                   'condim="4" contype="1" conaffinity="1"')
    cam_xyaxes = camera_xyaxes(WRIST_CAMERA_POSITION, WRIST_CAMERA_LOOK_AT, up=(1.0, 0.0, 0.0))
    # gravcomp: the servos hold only the arm's motion, not its weight, so tracking is tight.
    return f"""
<body name="pedestal" pos="0 0 0">
  <geom type="cylinder" size="0.07 {BASE_HEIGHT / 2}" pos="0 0 {BASE_HEIGHT / 2}" material="dark" contype="0" conaffinity="0"/>
  <body name="link_1" pos="0 0 {BASE_HEIGHT}" gravcomp="1">
    <joint name="joint_1" damping="{ARM_DAMPING[0]}" armature="{ARM_ARMATURE}" axis="0 0 1" range="{_vec(r[0])}"/>
    <geom type="cylinder" size="0.055 {(SHOULDER_HEIGHT - BASE_HEIGHT) / 2}" pos="0 0 {(SHOULDER_HEIGHT - BASE_HEIGHT) / 2}" {visual}/>
    <body name="link_2" pos="0 0 {SHOULDER_HEIGHT - BASE_HEIGHT}" gravcomp="1">
      <joint name="joint_2" damping="{ARM_DAMPING[1]}" armature="{ARM_ARMATURE}" axis="0 1 0" range="{_vec(r[1])}"/>
      <geom type="capsule" fromto="0 0 0 0 0 {UPPER_ARM}" size="0.035" {visual}/>
      <body name="link_3" pos="0 0 {UPPER_ARM}" gravcomp="1">
        <joint name="joint_3" damping="{ARM_DAMPING[2]}" armature="{ARM_ARMATURE}" axis="0 1 0" range="{_vec(r[2])}"/>
        <geom type="capsule" fromto="0 0 0 {FOREARM / 2} 0 0" size="0.03" {visual}/>
        <body name="link_4" pos="{FOREARM / 2} 0 0" gravcomp="1">
          <joint name="joint_4" damping="{ARM_DAMPING[3]}" armature="{ARM_ARMATURE}" axis="1 0 0" range="{_vec(r[3])}"/>
          <geom type="capsule" fromto="0 0 0 {FOREARM / 2} 0 0" size="0.027" {visual}/>
          <body name="link_5" pos="{FOREARM / 2} 0 0" gravcomp="1">
            <joint name="joint_5" damping="{ARM_DAMPING[4]}" armature="{ARM_ARMATURE}" axis="0 1 0" range="{_vec(r[4])}"/>
            <geom type="capsule" fromto="0 0 0 0 0 {-WRIST}" size="0.025" {visual}/>
            <body name="link_6" pos="0 0 {-WRIST}" gravcomp="1">
              <joint name="joint_6" damping="{ARM_DAMPING[5]}" armature="{ARM_ARMATURE}" axis="0 0 1" range="{_vec(r[5])}"/>
              <geom name="palm" type="box" pos="0 0 -0.018" size="0.025 {FINGER_OPEN_Y + 0.01} 0.014" material="arm" contype="1" conaffinity="1"/>
              <site name="ee" pos="0 0 {-GRASP_DEPTH}" quat="0 1 0 0" size="0.005" rgba="1 0 1 0"/>
              <camera name="wrist" pos="{_vec(WRIST_CAMERA_POSITION)}" xyaxes="{cam_xyaxes}" fovy="{WRIST_CAMERA_FOVY}"/>
              <body name="finger_left" pos="0 {FINGER_OPEN_Y} {-GRASP_DEPTH}" gravcomp="1">
                <joint name="finger_left" type="slide" axis="0 -1 0" damping="{FINGER_DAMPING}" range="0 {FINGER_TRAVEL}"/>
                <geom name="finger_left" {finger_geom}/>
              </body>
              <body name="finger_right" pos="0 {-FINGER_OPEN_Y} {-GRASP_DEPTH}" gravcomp="1">
                <joint name="finger_right" type="slide" axis="0 1 0" damping="{FINGER_DAMPING}" range="0 {FINGER_TRAVEL}"/>
                <geom name="finger_right" {finger_geom}/>
              </body>
            </body>
          </body>
        </body>
      </body>
    </body>
  </body>
</body>"""


def _actuators_xml() -> str:
    arm = "\n".join(
        f'<position name="{j}" joint="{j}" kp="{kp}" ctrlrange="{_vec(rng)}"/>'
        for j, kp, rng in zip(ARM_JOINTS, ARM_KP, ARM_JOINT_RANGES)
    )
    gripper = (f'<position name="gripper" joint="finger_left" kp="{GRIPPER_KP}" ctrlrange="0 {FINGER_TRAVEL}" '
               f'forcerange="{-GRIPPER_MAX_FORCE} {GRIPPER_MAX_FORCE}"/>')
    return arm + "\n" + gripper


def _cameras_xml() -> str:
    return "\n".join(
        f'<camera name="{name}" pos="{_vec(pos)}" xyaxes="{camera_xyaxes(pos, target)}" fovy="{fovy}"/>'
        for name, (pos, target, fovy) in FIXED_CAMERAS.items()
    )


def cover_xml(cover_x: tuple[float, float] | None) -> str:
    """MJCF of the cover: a roof and two walls over the belt, visual only (nothing collides with it)."""
    if cover_x is None:
        return ""
    start, end = cover_x
    half_x = (end - start) / 2
    t = COVER_THICKNESS / 2
    roof_z = BLOCK_REST_Z + BLOCK_HALF + COVER_CLEARANCE + t
    wall_y = BELT_HALF_WIDTH + BELT_FRAME_MARGIN + t  # just outside the belt frame
    half_span = wall_y + t
    visual = f'contype="0" conaffinity="0" rgba="{COVER_RGBA}"'
    return (f'<body name="cover" pos="{start + half_x:.4f} {BELT_CENTER_Y} 0">'
            f'<geom name="cover_roof" type="box" pos="0 0 {roof_z:.4f}" size="{half_x:.4f} {half_span:.4f} {t:.4f}" {visual}/>'
            f'<geom name="cover_wall_near" type="box" pos="0 {-wall_y:.4f} {roof_z / 2:.4f}" size="{half_x:.4f} {t:.4f} {roof_z / 2:.4f}" {visual}/>'
            f'<geom name="cover_wall_far" type="box" pos="0 {wall_y:.4f} {roof_z / 2:.4f}" size="{half_x:.4f} {t:.4f} {roof_z / 2:.4f}" {visual}/>'
            '</body>')


def build_scene_xml(num_blocks: int, timestep: float = DEFAULT_TIMESTEP, max_image_size: int = DEFAULT_OFFSCREEN_SIZE,
                    cover_x: tuple[float, float] | None = None) -> str:
    """The whole scene. `max_image_size` sizes the offscreen buffer (renders may not exceed it);
    `cover_x` (start, end) puts the foresight setting's cover over the belt (None: none)."""
    belt_frame_half_len = (BELT_X_END - BELT_X_START) / 2
    belt_frame_x = (BELT_X_START + BELT_X_END) / 2
    frame_half_h = (BELT_TOP_Z - 2 * SLAT_HALF_THICKNESS) / 2
    # Rendering cost: shadow maps off (they dominate a render's cost), no multisampling, coarse capsule meshes.
    return f"""<mujoco model="conveyor_pick">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{timestep}" integrator="implicitfast"/>
  <visual>
    <quality shadowsize="0" offsamples="0" numslices="12" numstacks="6"/>
    <global offwidth="{max_image_size}" offheight="{max_image_size}"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.3 0.3 0.3" specular="0 0 0"/>
  </visual>
  <default>
    <geom density="500"/>
  </default>
  <asset>
    <texture name="sky" type="skybox" builtin="gradient" rgb1="0.78 0.84 0.90" rgb2="0.45 0.50 0.56" width="64" height="64"/>
    <texture name="floor" type="2d" builtin="checker" rgb1="0.62 0.60 0.56" rgb2="0.56 0.54 0.50" width="64" height="64"/>
    <material name="floor" texture="floor" texrepeat="8 8"/>
    <material name="slat" rgba="0.16 0.16 0.17 1"/>
    <material name="belt_frame" rgba="0.35 0.36 0.40 1"/>
    <material name="bin" rgba="0.55 0.40 0.25 1"/>
    <material name="arm" rgba="0.85 0.85 0.88 1"/>
    <material name="dark" rgba="0.25 0.25 0.28 1"/>
    <material name="finger" rgba="0.20 0.20 0.22 1"/>
  </asset>
  <worldbody>
    <light name="key" pos="0.3 0.2 1.6" dir="-0.2 -0.1 -1" directional="true" diffuse="{LIGHT_DIFFUSE} {LIGHT_DIFFUSE} {LIGHT_DIFFUSE}" castshadow="false"/>
    <geom name="floor" type="plane" size="2 2 0.05" material="floor" contype="1" conaffinity="1"/>
    <geom name="belt_frame" type="box" pos="{belt_frame_x} {BELT_CENTER_Y} {frame_half_h}" size="{belt_frame_half_len} {BELT_HALF_WIDTH + BELT_FRAME_MARGIN} {frame_half_h}" material="belt_frame" contype="0" conaffinity="0"/>
    {_cameras_xml()}
    {_slats_xml()}
    {_blocks_xml(num_blocks)}
    {_bin_xml()}
    {_arm_xml()}{cover_xml(cover_x)}
  </worldbody>
  <equality>
    <joint joint1="finger_right" joint2="finger_left" polycoef="0 1 0 0 0"/>
  </equality>
  <actuator>
{_actuators_xml()}
  </actuator>
</mujoco>"""
