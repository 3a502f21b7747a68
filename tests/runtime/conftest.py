"""Sessions on our fake robot for the runtime tests: started at a fast rate, always closed."""

import pytest

from runtime.control.session import Session, SessionConfig
from tests.fakes import ConstantPolicy, FakeRobot

FPS = 60.0


@pytest.fixture
def make_session():
    """make_session(policy=None, teleoperator=None, robot=None, **SessionConfig fields) -> (session, robot)
    (robot None: a FakeRobot); every session is closed after the test, and must not have died."""
    sessions = []

    def make(policy=None, teleoperator=None, robot=None, **config):
        robot = robot or FakeRobot()
        session = Session(robot, policy or ConstantPolicy(), SessionConfig(**({"fps": FPS} | config)), teleoperator)
        session.start()
        sessions.append(session)
        return session, robot

    yield make
    for session in sessions:
        session.close()
        assert session.loop_error is None
