"""The operator's input and the control lease: who drives while taken over, and with what.

The browser sends the keys held and gamepad axes (`TeleopKeys`); a teleop device (a leader arm,
a LeRobot gamepad) is read once per tick. Moving either past its dead zone can take over at once
(`takeover_on_input`). One client holds control at a time: another's takeover, release or keys
are refused until it releases or has been silent for `control_lease_s`. Input the browser stops
refreshing for `key_timeout_s` counts as released and the arm holds.

The session owns the mode; this class is told it and asks the session to take over through
`take_over(client)`. Times are the session's tick clock (`now`), so a test driving ticks by hand
drives the lease and key timeouts too.
"""

from __future__ import annotations

from typing import Callable

from robot_io.datasets.schema import INTERVENTION_SEGMENTS, SEGMENT_CORRECTION, SEGMENT_NONE
from robot_io.devices.robot import CartesianControl, Robot
from robot_io.devices.teleop import CartesianTeleoperator, Teleoperator
from runtime.control.commands import Mode, TeleopKeys
from runtime.control.event_log import EventLog
from runtime.control.session_config import SessionConfig
from runtime.control.teleop_keys import axes_to_delta, keys_to_delta, past_dead_zone

DEVICE_CLIENT = "teleop-device"  # the controller name of the session's teleoperator device
TAKEOVER_MODES = (Mode.RUNNING, Mode.PAUSED, Mode.IDLE, Mode.HOMING)  # modes input may take over from


class OperatorInput:
    def __init__(self, config: SessionConfig, robot: Robot, teleoperator: Teleoperator | None, log: EventLog,
                 take_over: Callable[[str], Mode]) -> None:
        self.config = config
        self.robot = robot
        self.teleoperator = teleoperator
        self._log = log
        self._take_over = take_over  # the session's TakeOver(client), which may be refused: the mode after it
        self.controller: str | None = None  # the client holding control while taken over
        self._controller_seen = 0.0  # tick time of its last input
        self._keys: frozenset[str] = frozenset()
        self._axes: tuple[float, ...] = ()
        self._keys_at = 0.0
        self._device_last: dict[str, float] | None = None  # the teleop device's previous reading
        self._device_action: dict[str, float] | None = None  # its command while it has control
        self._device_segment = SEGMENT_CORRECTION  # the intervention segment of its latest reading
        self._gripper_closed = False

    # --- the lease ------------------------------------------------------------------------------
    def may_control(self, client: str, mode: Mode, now: float) -> bool:
        """Take over / release is refused while another client holds control (and is still there)."""
        return mode is not Mode.TAKEOVER or client == self.controller or self._lease_expired(now)

    def controller_label(self) -> str:
        return "the teleop device" if self.controller == DEVICE_CLIENT else f"operator {self.controller or '(console)'}"

    def took_over(self, client: str, previous: dict[str, float] | None, now: float) -> None:
        """A takeover happened: `client` drives from where the arm is, keys released."""
        self.controller, self._controller_seen = client, now
        self._keys = frozenset()
        self._gripper_closed = bool(previous and previous.get("gripper.pos", 0.0) >= 0.5)

    def gave_up_control(self) -> None:
        self.controller = None

    def forget_device_reading(self) -> None:
        """A new scene or a reconnected device: its reading before says nothing about motion now."""
        self._device_last = None

    # --- input ------------------------------------------------------------------------------------
    def keys(self, command: TeleopKeys, mode: Mode, now: float) -> None:
        """The browser's (or a Cartesian device's) input; may take over first."""
        moving = bool(command.keys) or past_dead_zone(command.axes, self.config.teleop_dead_zone)
        if mode is not Mode.TAKEOVER and moving and self._takes_over_on_input(mode):
            mode = self._take_over(command.client)  # this tick: the input below moves the arm at once
        if mode is not Mode.TAKEOVER:
            if moving or command.toggle_gripper:
                self._log.hint = "Keys are ignored: press Take over to drive with the keyboard."
            return
        if self.controller != command.client and not self._lease_expired(now):
            if moving or command.toggle_gripper:
                self._log.hint = f"{self.controller_label()} has control: your input is ignored until they release."
            return
        if not isinstance(self.robot, CartesianControl):
            self._log.hint = "This robot has no end-effector control: keyboard teleop is unavailable."
            return
        self.controller = command.client
        self._keys, self._axes = command.keys, tuple(command.axes)
        self._keys_at = self._controller_seen = now
        if command.toggle_gripper:
            self._gripper_closed = not self._gripper_closed

    def poll_device(self, mode: Mode, now: float) -> Exception | None:
        """Read the teleop device once per tick; its motion past the dead zone takes over. Returns
        the error when the device failed (the caller holds and names it), None when it answered."""
        device = self.teleoperator
        try:
            if isinstance(device, CartesianTeleoperator):  # a gamepad or keyboard: the browser's input path
                motion = device.get_motion()
            else:
                reading = {k: float(v) for k, v in device.get_action().items() if k in self.robot.action_features}
                segment = device.intervention_segment()
                if segment not in INTERVENTION_SEGMENTS:
                    raise ValueError(f"intervention segment {segment!r} is not one of {list(INTERVENTION_SEGMENTS)}")
        except Exception as err:  # noqa: BLE001 - a device that fails holds the robot, never stops the loop
            self._device_last = self._device_action = None
            return err
        if isinstance(device, CartesianTeleoperator):
            toggle = motion.gripper_closed is not None and motion.gripper_closed != self._gripper_closed
            self.keys(TeleopKeys(motion.keys, toggle, motion.axes, DEVICE_CLIENT), mode, now)
            return None
        last, self._device_last = self._device_last, reading
        self._device_segment = SEGMENT_CORRECTION if segment == SEGMENT_NONE else segment  # it drives: an intervention
        moved = last is not None and any(abs(reading[k] - last.get(k, reading[k])) > self.config.device_dead_zone for k in reading)
        if moved and mode is not Mode.TAKEOVER and self._takes_over_on_input(mode):
            mode = self._take_over(DEVICE_CLIENT)
        controls = mode is Mode.TAKEOVER and self.controller == DEVICE_CLIENT
        self._device_action = reading if controls else None
        if controls:
            self._controller_seen = now
        return None

    def segment(self, mode: Mode) -> str:
        """The intervention segment of this tick's frame (robot_io.datasets.schema): "none" outside a
        takeover; the teleop device's own report while it drives; "correction" for any other operator."""
        if mode is not Mode.TAKEOVER:
            return SEGMENT_NONE
        if self.controller == DEVICE_CLIENT and not isinstance(self.teleoperator, CartesianTeleoperator):
            return self._device_segment
        return SEGMENT_CORRECTION

    def command(self, mode: Mode, previous: dict[str, float], now: float) -> dict[str, float] | None:
        """The operator's command this tick: the teleop device's reading when it has control, else
        keys and gamepad axes as an end-effector step. None (hold) when nothing moves or the input
        went stale (a closed tab, a gamepad unplugged)."""
        if mode is not Mode.TAKEOVER:
            return None
        if self.controller == DEVICE_CLIENT and not isinstance(self.teleoperator, CartesianTeleoperator):
            return None if self._device_action is None else {**previous, **self._device_action}
        if not isinstance(self.robot, CartesianControl):
            return None
        fresh = now - self._keys_at <= self.config.key_timeout_s
        keys, axes = (self._keys, self._axes) if fresh else (frozenset(), ())
        c = self.config
        delta = keys_to_delta(keys, c.teleop_linear_step, c.teleop_angular_step)
        delta += axes_to_delta(axes, c.teleop_dead_zone, c.teleop_linear_step, c.teleop_angular_step)
        gripper = 1.0 if self._gripper_closed else 0.0
        if not delta.any() and gripper == previous.get("gripper.pos", gripper):
            return None
        return self.robot.ee_delta_action(delta, gripper)

    def _takes_over_on_input(self, mode: Mode) -> bool:
        return self.config.takeover_on_input and mode in TAKEOVER_MODES

    def _lease_expired(self, now: float) -> bool:
        return now - self._controller_seen > self.config.control_lease_s


