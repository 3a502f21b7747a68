"""An automatic operator for the conveyor sim: a scripted stand-in for a person watching the
policy with a leader arm in hand, who takes over when the policy strays or stalls.

It plugs into the console as any teleop device does (`robot_io.devices.teleop.Teleoperator`): while it
only watches, its reading stays at its rest pose, so the session sees no motion; once it judges
the attempt lost it reports the scripted expert's command every tick, the reading jumps past the
session's dead zone and the session hands it control (recorded as an intervention, one
correction episode in "corrections" mode). It then drives to the end of the episode, in two
segments as RaC (arXiv 2509.07953) splits a human intervention, and says which one each command
belongs to (`intervention_segment`, recorded per frame):
- recovery: back to a state the policy knows: open the gripper where the hand is (letting go of a
  wrong block, or fingers closed on nothing), rise straight up to the height the scripted expert
  lines up at, then move to its approach pose above the target's predicted position. Skipped when
  the hand holds the target; cut short after `recovery_max_s`;
- correction: the scripted expert's own commands, to the end.

What it watches (privileged sim state, what a person sees from the bench):
- a wrong block lifted off the belt;
- the target block not lifted while it still has `catch_margin_s` of belt travel inside the
  arm's reach (the expert's last good chance to catch it);
- the target block inside the arm's reach (and out from under the foresight setting's cover, if
  any) for `fumble_s` and not lifted: on a slow belt it stays
  in reach longer than an episode lasts, so the rule above never fires while the policy fumbles
  (hovering over a neighbouring block after a missed grasp, say);
- the target held but not delivered within `deliver_s` (a stall on the way to the bin).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robot_io.datasets.schema import SEGMENT_CORRECTION, SEGMENT_NONE, SEGMENT_RECOVERY
from robot_io.sim import scene
from robot_io.sim.conveyor_env import SimState
from robot_io.sim.scripted_expert import COVER_GRASP_CLEARANCE, ScriptedExpert, wrap_angle
from robot_io.sim.sim_robot import GRIPPER_KEY, JOINT_KEYS, SIM_STATE_KEY, SimRobot
from robot_io.devices.teleop import Teleoperator

LIFTED_Z = scene.BELT_TOP_Z + 3 * scene.BLOCK_HALF  # a block this high is off the belt
REASON_KINDS = ("wrong_block", "missed", "stalled", "fumbled")


@dataclass(frozen=True)
class AutoOperatorConfig:
    catch_margin_s: float = 2.0  # take over when the unlifted target has this little reach left
    deliver_s: float = 4.0  # take over when a held target is not in the bin this long after lifting
    # Take over when the unlifted target has been in reach this long (None: never). Longer than the
    # belt's fastest pass through the reach less catch_margin_s (0.8 m at 0.15 m/s: 5.3 - 2 s).
    fumble_s: float | None = 5.0
    recovery_max_s: float = 3.0  # the recovery hands over to the correction after this long at the latest
    recovery_tolerance: float = 0.03  # m: the hand this close to the approach pose has recovered

    def __post_init__(self) -> None:
        times = (self.catch_margin_s, self.deliver_s) + (() if self.fumble_s is None else (self.fumble_s,))
        if not all(t > 0 for t in times):
            raise ValueError(f"AutoOperatorConfig times must be > 0, got {self.catch_margin_s}, {self.deliver_s}, {self.fumble_s}")
        if not (self.recovery_max_s >= 0 and self.recovery_tolerance > 0):
            raise ValueError(f"AutoOperatorConfig needs recovery_max_s >= 0 and recovery_tolerance > 0, "
                             f"got {self.recovery_max_s}, {self.recovery_tolerance}")


class AutoOperator(Teleoperator):
    name = "auto_operator"

    def __init__(self, robot: SimRobot, config: AutoOperatorConfig | None = None) -> None:
        self.robot = robot
        self.config = config or AutoOperatorConfig()
        self._expert = ScriptedExpert()
        self._connected = False
        self._episode_seed: int | None = None
        self._rest: dict[str, float] = {}
        self._lifted_at: float | None = None
        self._reachable_at: float | None = None  # when the unlifted target came within reach
        self.reason = ""  # why it took over in the current episode, "" while it only watches
        self.reason_kind = ""  # one of REASON_KINDS, "" while it only watches
        self._took_over_at: float | None = None
        self._segment = SEGMENT_NONE  # of the latest command: none while watching, then recovery, correction

    @property
    def action_features(self) -> dict[str, type]:
        return dict(self.robot.action_features)

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self, calibrate: bool = True) -> None:
        self._connected = True

    def disconnect(self) -> None:
        self._connected = False

    def intervention_segment(self) -> str:
        """The segment of the latest command: "none" while watching, then "recovery", "correction"."""
        return self._segment

    def get_action(self) -> dict[str, float]:
        state = self.robot.env.state()
        episode = self.robot.episode
        if episode.seed != self._episode_seed:  # a new scene: watch again from its start
            self._episode_seed, self.reason, self.reason_kind = episode.seed, "", ""
            self._lifted_at = self._reachable_at = self._took_over_at = None
            self._segment = SEGMENT_NONE
            self._expert.reset()
            self._rest = {**dict(zip(JOINT_KEYS, map(float, state.joint_targets))), GRIPPER_KEY: float(state.gripper_command)}
        if not self.reason:
            self.reason_kind, self.reason = self._judge(state)
            if not self.reason:
                return dict(self._rest)
            self._took_over_at, self._segment = state.time, SEGMENT_RECOVERY
        command = self._recovery_command(state) if self._segment == SEGMENT_RECOVERY else None
        if command is None:
            self._segment = SEGMENT_CORRECTION
            command = self._expert.infer({SIM_STATE_KEY: state}, episode.instruction).actions[0]  # (joints + gripper,)
        return dict(zip([*JOINT_KEYS, GRIPPER_KEY], map(float, command)))

    def _recovery_command(self, state: SimState) -> np.ndarray | None:
        """One recovery command (joints + gripper), or None once recovered (or out of time)."""
        expert = self._expert.config
        if state.grasped_index == state.target_index or state.time - self._took_over_at > self.config.recovery_max_s:
            return None
        approach, yaw = self._expert.approach_pose(state, state.target_index)
        hand = np.asarray(state.ee_position)
        if state.gripper > expert.open_closure:  # let go where the hand is
            return self._expert.step_toward(state, hand, state.ee_yaw, 0.0)
        if hand[2] < approach[2] - expert.height_tolerance:  # rise straight up, clear of the belt and blocks
            return self._expert.step_toward(state, np.array([*hand[:2], approach[2]]), state.ee_yaw, 0.0)
        off = float(np.linalg.norm(hand[:2] - approach[:2]))
        if off < self.config.recovery_tolerance and abs(wrap_angle(state.ee_yaw - yaw)) < expert.yaw_tolerance:
            return None
        return self._expert.step_toward(state, approach, yaw, 0.0)

    def _judge(self, state) -> tuple[str, str]:
        """(kind, why) to take over now, or ("", "") to keep watching."""
        lifted = state.block_positions[:, 2] > LIFTED_Z  # (blocks,)
        wrong = [c for i, c in enumerate(state.block_colors) if lifted[i] and i != state.target_index and not state.in_bin[i]]
        if wrong:
            return "wrong_block", f"the {wrong[0]} block was lifted instead of the {state.block_colors[state.target_index]} one"
        target = state.target_index
        if state.in_bin[target]:
            return "", ""
        if lifted[target]:
            self._lifted_at = state.time if self._lifted_at is None else self._lifted_at
            if state.time - self._lifted_at > self.config.deliver_s:
                return "stalled", f"the target was held {self.config.deliver_s:.0f} s without reaching the bin"
            return "", ""
        self._lifted_at = None
        x, speed = state.block_positions[target, 0], max(state.belt_speed, 1e-6)
        reach_start, reach_end = self._expert.config.reach_x_range
        if state.cover_x is not None:  # a block under the foresight setting's cover cannot be picked yet
            reach_start = max(reach_start, state.cover_x[1] + COVER_GRASP_CLEARANCE)
        if (reach_end - x) / speed < self.config.catch_margin_s:
            return "missed", f"the target is {reach_end - x:.2f} m from leaving the arm's reach and not picked"
        if x >= reach_start and self.config.fumble_s is not None:
            self._reachable_at = state.time if self._reachable_at is None else self._reachable_at
            if state.time - self._reachable_at > self.config.fumble_s:
                return "fumbled", f"the target has been within the arm's reach {self.config.fumble_s:g} s and not picked"
        return "", ""
