"""Our own fake devices for tests: a three-joint robot with two small cameras, and policies."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from robot_io.policy import Policy, PolicyOutput, with_pictures
from robot_io.devices.robot import Robot

JOINTS = ["joint_1.pos", "joint_2.pos", "gripper.pos"]
CAMERAS = ["head", "wrist"]
FRAME_SHAPE = (32, 48, 3)


@dataclass(frozen=True)
class FakeEpisode:
    seed: int
    instruction: str


class FakeRobot(Robot):
    """Joints move instantly to their commands; each camera frame shows the tick number."""

    name = "fake_robot"

    def __init__(self) -> None:
        self.positions = {k: 0.0 for k in JOINTS}
        self.sent: list[dict[str, float]] = []
        self.ticks = 0
        self.seed: int | None = None
        self._connected = False

    @property
    def observation_features(self):
        return {**{k: float for k in JOINTS}, **{c: FRAME_SHAPE for c in CAMERAS}}

    @property
    def action_features(self):
        return {k: float for k in JOINTS}

    @property
    def is_connected(self) -> bool:
        return self._connected

    @property
    def joint_limits(self):
        return {"joint_1.pos": (-1.0, 1.0), "joint_2.pos": (-1.0, 1.0), "gripper.pos": (0.0, 1.0)}

    def connect(self, calibrate: bool = True) -> None:
        self._connected = True

    def get_observation(self):
        frame = np.full(FRAME_SHAPE, self.ticks % 256, dtype=np.uint8)
        return {**self.positions, **{c: frame.copy() for c in CAMERAS}}

    def send_action(self, action):
        self.positions = {k: float(action[k]) for k in JOINTS}
        self.sent.append(dict(self.positions))
        self.ticks += 1
        return dict(self.positions)

    def disconnect(self) -> None:
        self._connected = False

    # The sim's extras, so the session's scene and teleop paths run.
    def reset_scene(self, seed):
        self.seed = 7 if seed is None else seed
        self.positions = {k: 0.0 for k in JOINTS}
        return FakeEpisode(self.seed, "pick up the red block and put it in the bin")

    def is_success(self) -> bool:
        return self.positions["gripper.pos"] > 0.9

    def ee_delta_action(self, delta, gripper):
        # x moves joint 1, z moves joint 2: enough to see teleop reach the robot.
        action = dict(self.positions)
        action["joint_1.pos"] += float(delta[0])
        action["joint_2.pos"] += float(delta[2])
        if gripper is not None:
            action["gripper.pos"] = float(gripper)
        return action


class ConstantPolicy(Policy):
    """Returns a chunk that walks joint 1 toward `target` in equal steps."""

    def __init__(self, target: float = 0.5, steps: int = 10, fill: float | None = None) -> None:
        self.target, self.steps, self.fill = target, steps, fill
        self.calls = 0
        self.resets = 0
        self.instructions: list[str] = []
        self.observed_frames: list[int] = []  # the camera frame value of every observe() call

    def observe(self, observation):
        self.observed_frames.append(int(observation["head"][0, 0, 0]))

    def infer(self, observation, instruction):
        self.calls += 1
        self.instructions.append(instruction)
        actions = np.zeros((self.steps, len(JOINTS)), dtype=np.float32)
        actions[:, 0] = np.linspace(observation["joint_1.pos"], self.target, self.steps + 1)[1:]
        if self.fill is not None:
            actions[:] = self.fill
        return PolicyOutput(actions=actions, timings_ms={"total": 0.1})

    def reset(self) -> None:
        self.resets += 1


class FailingPolicy(Policy):
    def infer(self, observation, instruction):
        raise ValueError("no colour named in the instruction")


class OffsetPolicy(Policy):
    """Flat chunks whose joint 1 alternates between `low` and `high`: every switch is a jump.

    From call `nan_from_call` on (1-based; None: never) the chunks are NaN."""

    def __init__(self, low: float = 0.0, high: float = 0.3, steps: int = 20, nan_from_call: int | None = None) -> None:
        self.low, self.high, self.steps, self.nan_from_call = low, high, steps, nan_from_call
        self.calls = 0

    def infer(self, observation, instruction):
        self.calls += 1
        actions = np.zeros((self.steps, len(JOINTS)), dtype=np.float32)  # (steps, joints)
        actions[:, 0] = self.high if self.calls % 2 == 0 else self.low
        if self.nan_from_call is not None and self.calls >= self.nan_from_call:
            actions[:] = np.nan
        return PolicyOutput(actions=actions, timings_ms={"total": 0.1})


class ForesightPolicy(ConstantPolicy):
    """ConstantPolicy that also predicts every camera's frame t+15, as a world model does: a
    uniform picture of the value that frame will show (FakeRobot's frames show the tick) plus
    `error`, and a small latent of the same value."""

    foresight_horizon = 15

    def __init__(self, picture_size: tuple[int, int] = (16, 24), error: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.picture_size, self.error = picture_size, error

    def infer(self, observation, instruction):
        chunk = super().infer(observation, instruction)
        value = (int(observation["head"][0, 0, 0]) + self.foresight_horizon + self.error) % 256
        pictures = {c: np.full((*self.picture_size, 3), value, dtype=np.uint8) for c in CAMERAS}  # (h, w, 3)
        latents = {c: np.full((4, 2, 2), value / 255.0, dtype=np.float32) for c in CAMERAS}  # (C, h/8, w/8)
        return PolicyOutput(actions=chunk.actions, foresight=pictures, foresight_latents=latents,
                            timings_ms=chunk.timings_ms)


class DeferredForesightPolicy(ForesightPolicy):
    """ForesightPolicy that returns its chunk with the pictures pending, as the console's live model
    does, and decodes them on `decode_foresight`; `on_decode()` is called first (what a test checks
    at that moment), and `fail_decode` makes the decoder raise."""

    def __init__(self, on_decode=None, fail_decode: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.on_decode, self.fail_decode = on_decode, fail_decode

    def infer(self, observation, instruction):
        full = super().infer(observation, instruction)
        return replace(full, foresight=None, pictures_pending=True)

    def decode_foresight(self, output):
        if self.on_decode is not None:
            self.on_decode()
        if self.fail_decode:
            raise RuntimeError("decoder out of memory")
        value = float(next(iter(output.foresight_latents.values()))[0, 0, 0])
        pictures = {c: np.full((*self.picture_size, 3), round(value * 255), dtype=np.uint8) for c in CAMERAS}
        return with_pictures(output, pictures, decode_ms=0.1)
