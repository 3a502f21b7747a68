"""Taking over from the policy: by moving an input, within one tick and without a jump; one
client in control at a time; a teleop device (leader arm) and its failure."""

import time

import pytest

from robot_io.devices.teleop import Teleoperator
from runtime.control.commands import Mode, Release, RunPolicy, TakeOver, TeleopKeys
from runtime.control.session import DEVICE_CLIENT
from tests.fakes import JOINTS, ConstantPolicy
from tests.session_support import wait_until

MAX_STEP = 0.02


class FakeLeader(Teleoperator):
    """A leader arm whose joints the test moves; `fail` makes the next reads raise."""

    name = "fake_leader"

    def __init__(self) -> None:
        self.joints = {k: 0.0 for k in JOINTS}
        self.fail = False

    @property
    def action_features(self):
        return {k: float for k in JOINTS}

    @property
    def is_connected(self) -> bool:
        return True

    def connect(self, calibrate: bool = True) -> None:
        pass

    def get_action(self):
        if self.fail:
            raise ConnectionError("USB cable unplugged")
        return dict(self.joints)

    def disconnect(self) -> None:
        pass


@pytest.fixture
def start(make_session):
    """A session whose policy walks joint 1 slowly, with a tight step clamp and a short lease."""

    def start_session(teleoperator=None, **config):
        options = {"max_step_per_tick": MAX_STEP, "control_lease_s": 1.0} | config
        return make_session(ConstantPolicy(target=0.5, steps=200), teleoperator, **options)

    return start_session


def keep_pressing(session, until, client="tab-a", keys=("KeyW",), axes=(), timeout_s=10.0):
    """Send the input as a browser does (every few ms) until `until(snapshot)`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        session.submit(TeleopKeys(frozenset(keys), axes=tuple(axes), client=client))
        snapshot = session.snapshot()
        if snapshot is not None and until(snapshot):
            return snapshot
        time.sleep(0.02)
    raise AssertionError(f"not reached; last snapshot mode {session.snapshot().mode}, hint {session.snapshot().hint!r}")


def test_a_key_takes_over_from_the_policy_in_the_same_tick_without_a_jump(start):
    session, robot = start()
    session.submit(RunPolicy("go"))
    wait_until(lambda s: s.action_source == "policy" and s.state["joint_1.pos"] > 0.05, session)
    taken = keep_pressing(session, lambda s: s.mode is Mode.TAKEOVER and s.action_source == "operator")
    assert taken.controller == "tab-a"
    ticks, sources, commands = session.sent_commands.since(0)
    first_operator = sources.index("operator")
    assert sources[first_operator - 1] == "policy"  # no hold tick between the policy and the operator
    jumps = abs(commands[1:] - commands[:-1]).max(axis=1)
    assert jumps.max() <= MAX_STEP + 1e-6  # no commanded jump beyond the clamp, at either side


def test_gamepad_axes_take_over_past_the_dead_zone_only_and_hold_when_it_goes_quiet(start):
    session, _ = start(teleop_dead_zone=0.2)
    session.submit(RunPolicy("go"))
    wait_until(lambda s: s.action_source == "policy", session)
    for _ in range(10):  # a resting stick inside the dead zone changes nothing
        session.submit(TeleopKeys(frozenset(), axes=(0.1, -0.15, 0, 0, 0, 0), client="pad"))
        time.sleep(0.01)
    assert session.snapshot().mode is Mode.RUNNING
    moving = keep_pressing(session, lambda s: s.action_source == "operator", client="pad", keys=(), axes=(0.9, 0, 0, 0, 0, 0))
    assert moving.mode is Mode.TAKEOVER
    # The gamepad is unplugged: no more input reaches the session, the arm holds.
    held = wait_until(lambda s: s.tick > moving.tick and s.action_source == "hold", session, timeout_s=5)
    assert held.mode is Mode.TAKEOVER


def test_a_second_client_is_refused_while_another_holds_control(start):
    session, _ = start(control_lease_s=0.3)
    keep_pressing(session, lambda s: s.mode is Mode.TAKEOVER, client="tab-a")
    session.submit(TeleopKeys(frozenset({"KeyS"}), client="tab-b"))
    hinted = wait_until(lambda s: "operator tab-a has control" in s.hint, session)
    assert hinted.controller == "tab-a"
    session.submit(TakeOver(client="tab-b"))
    session.submit(Release(client="tab-b"))
    refused = wait_until(lambda s: "refused: operator tab-a has control" in s.last_error, session)
    assert refused.mode is Mode.TAKEOVER and refused.controller == "tab-a"
    # tab-a goes quiet (tab closed): after the lease, tab-b may take control.
    time.sleep(0.5)
    keep_pressing(session, lambda s: s.controller == "tab-b", client="tab-b", keys=("KeyS",))
    session.submit(Release(client="tab-b"))
    assert wait_until(lambda s: s.mode is Mode.IDLE, session).controller is None


def test_moving_the_leader_arm_takes_over_and_a_failing_device_holds(start):
    leader = FakeLeader()
    session, robot = start(teleoperator=leader)
    session.submit(RunPolicy("go"))
    wait_until(lambda s: s.action_source == "policy", session)
    leader.joints["joint_2.pos"] = 0.3  # the operator grabs the leader
    taken = wait_until(lambda s: s.mode is Mode.TAKEOVER and s.action_source == "operator", session)
    assert taken.controller == DEVICE_CLIENT
    follows = wait_until(lambda s: abs(s.state["joint_2.pos"] - 0.3) < 1e-6, session)  # clamped steps toward it
    assert follows.mode is Mode.TAKEOVER
    leader.fail = True
    held = wait_until(lambda s: "USB cable unplugged" in s.last_error and s.action_source == "hold", session)
    assert held.mode is Mode.TAKEOVER
    later = wait_until(lambda s: s.tick > held.tick + 5, session)
    assert later.state == held.state  # nothing moves while the device is gone


def test_a_device_reporting_an_unknown_intervention_segment_holds_and_says_so(start):
    leader = FakeLeader()
    leader.intervention_segment = lambda: "rescue"
    session, robot = start(teleoperator=leader)
    held = wait_until(lambda s: "'rescue' is not one of" in s.last_error, session)
    later = wait_until(lambda s: s.tick > held.tick + 3, session)
    assert later.state == held.state and later.action_source == "hold"
