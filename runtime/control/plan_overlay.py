"""A planned chunk drawn over a camera frame: the end-effector path the plan would take,
projected into the picture (dry runs show it before the arm moves).

Needs a robot that knows its geometry (robot_io.devices.robot.SceneGeometry: forward kinematics and
camera models); for others `draw_plan` is never called and the frame is shown as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from robot_io.devices.robot import CameraModel, SceneGeometry

PATH_RGB = (255, 64, 255)  # magenta stands out on the grey floor and the coloured blocks
START_RGB = (255, 255, 255)
END_RGB = (255, 220, 0)
LINE_PX = 2
DOT_PX = 4


def plan_path(robot: SceneGeometry, keys: Sequence[str], actions: np.ndarray) -> np.ndarray:
    """(steps, action_dim) planned commands -> (steps, 3) end-effector positions in the world."""
    return robot.end_effector_path([dict(zip(keys, map(float, step))) for step in actions])


def draw_plan(frame: np.ndarray, camera: CameraModel, path: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) frame -> a copy with the world path (N, 3) drawn as a line from its start
    (white dot) to its end (yellow dot). Points behind the camera are left out; a frame of
    another size than the camera model's is drawn on at scale."""
    pixels, in_front = camera.project(path)  # (N, 2), (N,)
    scale = np.array([frame.shape[1] / camera.width, frame.shape[0] / camera.height])
    points = np.round(pixels * scale).astype(np.int32)  # (N, 2)
    out = np.ascontiguousarray(frame).copy()
    for a, b, visible in zip(points[:-1], points[1:], in_front[:-1] & in_front[1:]):
        if visible:
            cv2.line(out, tuple(map(int, a)), tuple(map(int, b)), PATH_RGB, LINE_PX, cv2.LINE_AA)
    for index, colour in ((0, START_RGB), (len(points) - 1, END_RGB)):
        if in_front[index]:
            cv2.circle(out, tuple(map(int, points[index])), DOT_PX, colour, -1, cv2.LINE_AA)
    return out


def plan_overlays(robot: SceneGeometry, keys: Sequence[str], actions: np.ndarray, joints: Mapping[str, float],
                  frames: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every camera's frame with the plan drawn, the cameras placed as they were at `joints`
    (a wrist camera moves with the arm)."""
    path = plan_path(robot, keys, actions)
    cameras = robot.camera_models(joints)
    return {name: draw_plan(frame, cameras[name], path) for name, frame in frames.items() if name in cameras}
