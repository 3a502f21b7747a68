"""The console's session and the sim rollout of model.evaluate run a policy's chunks the same way:
the same scene, the same policy, the same commands, tick for tick (one ChunkSchedule in both)."""

import pytest

from robot_io.chunks.blending import BlendConfig
from robot_io.chunks.schedule import ChunkConfig
from robot_io.sim.conveyor_env import ConveyorSimConfig
from robot_io.sim.rollout import run_episode
from robot_io.sim.scripted_expert import ScriptedExpert
from robot_io.sim.sim_robot import SimRobot
from runtime.control.commands import RunPolicy
from runtime.control.session import Session, SessionConfig

SEED = 4
FPS = 15.0


class GuidedExpert(ScriptedExpert):
    """The scripted expert, keeping a log of the guides it was given (it does not use them)."""

    guided_chunks = True

    def __init__(self) -> None:
        super().__init__()
        self.guides: list[tuple[int, tuple[float, ...]]] = []

    def infer_guided(self, observation, instruction, plan, committed):
        self.guides.append((committed, tuple(round(float(v), 6) for v in plan[0])))
        return self.infer(observation, instruction)


def rollout_commands(chunks: ChunkConfig, policy: ScriptedExpert | None = None) -> tuple[list[dict[str, float]], str]:
    robot = SimRobot(ConveyorSimConfig(cameras=()))
    robot.connect()
    try:
        episode = robot.reset_scene(SEED)
        sent = []
        result = run_episode(robot, policy or ScriptedExpert(), chunks=chunks,
                             on_frame=lambda obs, action, source: sent.append(dict(action)))
        assert result.success  # the comparison covers a whole pick, not a hold
        return sent, episode.instruction
    finally:
        robot.disconnect()


def session_commands(chunks: ChunkConfig, instruction: str, ticks: int, policy: ScriptedExpert | None = None) -> list[dict[str, float]]:
    """The session driven tick by tick without its thread; each inference lands before the next
    tick, the one tick of latency the rollout plays."""
    robot = SimRobot(ConveyorSimConfig(cameras=()))
    session = Session(robot, policy or ScriptedExpert(), SessionConfig(fps=FPS, chunks=chunks, scene_seed=SEED, realtime_priority=0))
    session.connect()
    try:
        session.submit(RunPolicy(instruction))
        sent = []
        for tick in range(ticks):
            session.tick(tick / FPS)
            assert session.wait_for_policy(), "the policy runner did not finish in time"
            snapshot = session.snapshot()
            assert snapshot.tick == tick and snapshot.last_error == ""
            sent.append(dict(snapshot.action))
        return sent
    finally:
        session.close()


@pytest.mark.parametrize("chunks", [ChunkConfig(), ChunkConfig(4, BlendConfig("linear", steps=2))])
def test_session_sends_the_rollouts_commands_tick_for_tick(chunks):
    expected, instruction = rollout_commands(chunks)
    got = session_commands(chunks, instruction, len(expected))
    assert len(got) == len(expected)
    for tick, (a, b) in enumerate(zip(got, expected)):
        assert a == pytest.approx(b, abs=1e-6), f"tick {tick} differs"


def test_a_guided_session_gives_the_policy_the_rollouts_guides():
    chunks = ChunkConfig(guided=True)
    in_rollout, in_session = GuidedExpert(), GuidedExpert()
    expected, instruction = rollout_commands(chunks, in_rollout)
    got = session_commands(chunks, instruction, len(expected), in_session)
    assert got == [pytest.approx(b, abs=1e-6) for b in expected]
    assert len(in_rollout.guides) > 5 and in_session.guides == in_rollout.guides
    assert {committed for committed, _ in in_rollout.guides} == {1}  # one tick of latency
