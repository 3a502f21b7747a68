"""Device health: a robot or teleop device that stops answering, cameras that go stale, reconnecting.

A device that raises holds the loop instead of ending it: nothing is sent to a robot that stopped
answering until Reconnect connects it again (never calibrating: there is no terminal prompt here).
A camera (of a robot whose cameras run on their own clock) with no fresh frame within
`stale_frame_ms` locks the robot out: nobody moves it on a stale picture. The session asks this
class and acts on its answers (hold, pause the policy).
"""

from __future__ import annotations

from robot_io.devices.robot import CameraFreshness, Robot
from robot_io.devices.teleop import Teleoperator
from runtime.control.event_log import EventLog
from runtime.control.safety import stale_cameras


class DeviceHealth:
    def __init__(self, robot: Robot, teleoperator: Teleoperator | None, stale_frame_ms: float, log: EventLog) -> None:
        self.robot = robot
        self.teleoperator = teleoperator
        self.stale_frame_ms = stale_frame_ms
        self._log = log
        self.robot_fault = ""  # why the robot stopped answering; nothing reaches it until Reconnect
        self.teleop_fault = ""  # why the teleop device stopped answering
        self.stale: dict[str, float | None] = {}  # cameras without a fresh frame -> their age

    def fault(self) -> str:
        """Which device stopped answering and why, "" when all answer."""
        return " · ".join(fault for fault in (self.robot_fault, self.teleop_fault) if fault)

    def robot_failed(self, call: str, err: Exception) -> None:
        self.robot_fault = f"Robot {self.robot.name!r} stopped answering ({call}: {type(err).__name__}: {err})"
        self._log.note(f"{self.robot_fault}: holding. Press Reconnect when it is back.", error=True)

    def teleop_answered(self, err: Exception | None) -> None:
        """This tick's reading of the teleop device: `err` when it failed (said once), None when it answered."""
        name = self.teleoperator.name
        if err is not None:
            if not self.teleop_fault:
                self.teleop_fault = f"Teleoperator {name!r} stopped ({type(err).__name__}: {err})"
                self._log.note(f"{self.teleop_fault}: holding. Reconnect tries it again.", error=True)
        elif self.teleop_fault:
            self.teleop_fault = ""
            self._log.note(f"Teleoperator {name!r} answers again.")

    def check_cameras(self) -> tuple[dict[str, float | None], bool]:
        """(cameras with no fresh frame -> their age, whether one went stale just now)."""
        if not isinstance(self.robot, CameraFreshness):
            return {}, False
        stale = stale_cameras(self.robot.frame_ages_ms(), self.stale_frame_ms)
        went_stale = False
        if set(stale) != set(self.stale):
            if stale:
                ages = ", ".join(f"{c!r} ({'no frame yet' if a is None else f'last frame {a:.0f} ms ago'})" for c, a in stale.items())
                self._log.note(f"Stale camera {ages}: no fresh frame within {self.stale_frame_ms:.0f} ms, holding.", error=True)
                went_stale = True
            else:
                self._log.note("Every camera is fresh again: Run or take over to go on.")
        self.stale = stale
        return stale, went_stale

    def reconnect(self) -> tuple[bool, bool]:
        """Connect again to whatever stopped answering: (robot reconnected, teleop device reconnected)."""
        if not self.robot_fault and not self.teleop_fault:
            self._log.note("Nothing to reconnect: every device answers.")
            return False, False
        robot_back = bool(self.robot_fault) and self._connect_again(self.robot, f"robot {self.robot.name!r}")
        if robot_back:
            self.robot_fault = ""
        teleop_back = bool(self.teleop_fault) and self._connect_again(self.teleoperator, f"teleoperator {self.teleoperator.name!r}")
        if teleop_back:
            self.teleop_fault = ""
        return robot_back, teleop_back

    def _connect_again(self, device, label: str) -> bool:
        try:
            if device.is_connected:
                device.disconnect()  # a half-open link first
        except Exception:  # noqa: BLE001, S110 - a device that is gone may fail to disconnect too
            pass
        try:
            device.connect(calibrate=False)
        except Exception as err:  # noqa: BLE001 - say why, stay holding
            self._log.note(f"Reconnecting {label} failed ({type(err).__name__}: {err}): still holding.", error=True)
            return False
        self._log.note(f"Reconnected {label}: holding where it is.")
        return True
