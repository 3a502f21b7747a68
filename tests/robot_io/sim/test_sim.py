"""The MuJoCo conveyor simulation: determinism, belt physics, cameras, limits, IK and the expert.

Most tests run state-only (no cameras) or with tiny images so the file stays fast on 2 cores.
"""

import json
import threading

import numpy as np
import pytest

from robot_io.chunks.blending import BlendConfig
from robot_io.chunks.schedule import ChunkConfig
from robot_io.policy import Policy, PolicyOutput
from robot_io.devices.robot import CartesianControl, HasJointLimits, ResettableScene
from robot_io.sim.conveyor_env import ConveyorEnv, ConveyorSimConfig
from robot_io.sim.rollout import run_episode
from robot_io.sim.scripted_expert import ScriptedExpert, parse_target_color
from robot_io.sim.sim_robot import GRIPPER_KEY, JOINT_KEYS, SIM_STATE_KEY, SimCamera, SimRobot

SMALL_IMAGE = 64
STATE_ONLY = ConveyorSimConfig(cameras=())


def connected(config: ConveyorSimConfig) -> SimRobot:
    robot = SimRobot(config)
    robot.connect()
    return robot


@pytest.fixture(scope="module")
def robot():
    robot = connected(STATE_ONLY)
    yield robot
    robot.disconnect()


@pytest.fixture(scope="module")
def expert():
    return ScriptedExpert()


def hold(robot: SimRobot) -> dict[str, float]:
    observation = robot.get_observation()
    return {key: float(observation[key]) for key in robot.action_features}


# --- configuration -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad, message",
    [
        ({"fps": 0}, "fps"),
        ({"cameras": ("head", "ceiling")}, "cameras"),
        ({"belt_speed_range": (0.2, 0.1)}, "belt_speed_range"),
        ({"num_blocks": 5, "colors": ("red", "green")}, "num_blocks"),
        ({"colors": ("red", "mauve")}, "colors"),
        ({"block_spacing_range": (0.03, 0.1)}, "block_spacing_range"),
        ({"image_height": 4}, "image_height"),
    ],
)
def test_config_rejects_bad_values_with_a_named_field(bad, message):
    with pytest.raises(ValueError, match=message):
        ConveyorSimConfig(**bad)


def test_control_period_is_a_whole_number_of_substeps():
    env = ConveyorEnv(ConveyorSimConfig(cameras=(), physics_timestep=0.002))
    env.reset(0)
    env.step(env.home_joints, 0.0)
    assert env.time == pytest.approx(1 / 15)


# --- determinism ---------------------------------------------------------------------------------
def run_ticks(robot: SimRobot, seed: int, ticks: int):
    robot.reset_scene(seed)
    action = hold(robot)
    action["joint_1.pos"] += 0.3  # some arm motion too
    for _ in range(ticks):
        robot.send_action(action)
    return robot.get_observation()


def test_same_seed_same_episode_and_observations():
    config = ConveyorSimConfig(cameras=("head",), image_height=SMALL_IMAGE, image_width=SMALL_IMAGE)
    first, second = connected(config), connected(config)
    try:
        a, b = run_ticks(first, 11, 10), run_ticks(second, 11, 10)
        assert first.episode == second.episode
        sa, sb = a[SIM_STATE_KEY], b[SIM_STATE_KEY]
        np.testing.assert_array_equal(sa.block_positions, sb.block_positions)
        np.testing.assert_array_equal(sa.block_velocities, sb.block_velocities)
        np.testing.assert_array_equal(sa.joint_positions, sb.joint_positions)
        np.testing.assert_array_equal(a["head"], b["head"])
        assert all(a[k] == b[k] for k in JOINT_KEYS + (GRIPPER_KEY,))

        c = run_ticks(second, 12, 10)
        assert second.episode != first.episode
        assert not np.array_equal(c[SIM_STATE_KEY].block_positions, sa.block_positions)
    finally:
        first.disconnect()
        second.disconnect()


def test_reset_scene_without_a_seed_draws_one(robot):
    episode = robot.reset_scene(None)
    assert isinstance(episode.seed, int)
    assert robot.reset_scene(episode.seed) == episode


def test_episode_spec_names_the_target_in_the_instruction(robot):
    episode = robot.reset_scene(5)
    assert episode.target_color in episode.colors
    assert len(set(episode.colors)) == len(episode.colors) == STATE_ONLY.num_blocks
    assert episode.target_color in episode.instruction and "bin" in episode.instruction
    assert STATE_ONLY.belt_speed_range[0] <= episode.belt_speed <= STATE_ONLY.belt_speed_range[1]


def test_another_target_keeps_the_scene_and_changes_the_instruction(robot):
    own = robot.reset_scene(5)
    positions = robot.get_observation()[SIM_STATE_KEY].block_positions.copy()
    other_index = (own.colors.index(own.target_color) + 1) % len(own.colors)
    other = robot.reset_scene(5, target_index=other_index)
    assert (other.colors, other.belt_speed) == (own.colors, own.belt_speed)
    np.testing.assert_array_equal(robot.get_observation()[SIM_STATE_KEY].block_positions, positions)
    assert other.target_color == own.colors[other_index] != own.target_color
    assert other.target_color in other.instruction
    with pytest.raises(ValueError, match="target_index must be between 0 and 3"):
        robot.reset_scene(5, target_index=4)


# --- belt physics --------------------------------------------------------------------------------
def test_belt_carries_blocks_by_friction(robot):
    episode = robot.reset_scene(3)
    env = robot.env
    for dof in env._block_dof:  # start the blocks at rest: only belt friction can move them
        env.data.qvel[dof : dof + 6] = 0.0
    start = env.block_positions()
    action = hold(robot)
    ticks = 15
    for _ in range(ticks):
        robot.send_action(action)
    moved = env.block_positions() - start
    expected = episode.belt_speed * ticks / STATE_ONLY.fps
    np.testing.assert_allclose(moved[:, 0], expected, rtol=0.1)
    np.testing.assert_allclose(moved[:, 1:], 0.0, atol=2e-3)  # no sideways drift, still on the belt
    velocities = robot.get_observation()[SIM_STATE_KEY].block_velocities
    np.testing.assert_allclose(velocities[:, 0], episode.belt_speed, rtol=0.05)


# --- the Robot interface -------------------------------------------------------------------------
def test_cameras_render_the_configured_shape_and_features_match():
    config = ConveyorSimConfig(image_height=SMALL_IMAGE, image_width=SMALL_IMAGE + 16)
    robot = connected(config)
    try:
        camera = SimCamera(robot, "wrist")
        camera.connect()
        assert camera.read().shape == (SMALL_IMAGE, SMALL_IMAGE + 16, 3)  # black before any observation
        observation = robot.get_observation()
        assert set(observation) - {SIM_STATE_KEY} == set(robot.observation_features)
        for name in ("head", "wrist", "side"):
            frame = observation[name]
            assert robot.observation_features[name] == frame.shape == (SMALL_IMAGE, SMALL_IMAGE + 16, 3)
            assert frame.dtype == np.uint8
            assert frame.std() > 10, f"{name} looks blank"
        np.testing.assert_array_equal(camera.read(), observation["wrist"])
        assert list(robot.action_features) == [*JOINT_KEYS, GRIPPER_KEY]
        assert isinstance(robot, (CartesianControl, ResettableScene, HasJointLimits))
    finally:
        robot.disconnect()


def test_rendering_follows_the_thread_that_drives_the_robot():
    robot = connected(ConveyorSimConfig(cameras=("head",), image_height=32, image_width=32))
    try:
        frames = []
        worker = threading.Thread(target=lambda: frames.append(robot.get_observation()["head"]))
        worker.start()
        worker.join()
        frames.append(robot.get_observation()["head"])  # another driving thread, same renderer
        np.testing.assert_array_equal(frames[0], frames[1])
    finally:
        robot.disconnect()


def test_send_action_clamps_to_the_joint_limits(robot):
    robot.reset_scene(0)
    action = hold(robot)
    action["joint_1.pos"] = 10.0
    action["joint_2.pos"] = -10.0
    action[GRIPPER_KEY] = 2.0
    sent = robot.send_action(action)
    limits = robot.joint_limits
    assert sent["joint_1.pos"] == limits["joint_1.pos"][1]
    assert sent["joint_2.pos"] == limits["joint_2.pos"][0]
    assert sent[GRIPPER_KEY] == 1.0
    with pytest.raises(KeyError, match="gripper.pos"):
        robot.send_action({k: v for k, v in action.items() if k != GRIPPER_KEY})


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_ee_delta_action_moves_the_end_effector_that_way(robot, axis):
    robot.reset_scene(0)
    env = robot.env
    start = env.ee_pose()
    delta = np.zeros(6)
    delta[axis] = 0.01
    for _ in range(4):  # deltas add up from the commanded pose
        robot.send_action(robot.ee_delta_action(delta, gripper=None))
    for _ in range(3):
        robot.send_action(robot.ee_delta_action(np.zeros(6), gripper=None))
    moved = env.ee_pose().position - start.position
    assert moved[axis] == pytest.approx(0.04, abs=0.005)
    assert np.abs(np.delete(moved, axis)).max() < 0.005
    assert abs(env.ee_pose().yaw - start.yaw) < 0.02


def test_ee_delta_action_turns_and_sets_the_gripper(robot):
    robot.reset_scene(0)
    env = robot.env
    start_yaw = env.ee_pose().yaw
    action = robot.ee_delta_action(np.array([0, 0, 0, 0, 0, 0.2]), gripper=1.0)
    assert action[GRIPPER_KEY] == 1.0
    for _ in range(5):
        robot.send_action(action)
    assert env.ee_pose().yaw - start_yaw == pytest.approx(0.2, abs=0.02)
    assert robot.ee_delta_action(np.zeros(6), gripper=None)[GRIPPER_KEY] == 1.0  # None keeps it


# --- the scripted expert -------------------------------------------------------------------------
@pytest.mark.parametrize("speed, execute_horizon", [(0.03, 8), (0.15, 8), (0.15, 1)])
def test_expert_puts_the_target_block_in_the_bin(expert, speed, execute_horizon):
    robot = connected(ConveyorSimConfig(cameras=(), belt_speed_range=(speed, speed)))
    try:
        for seed in (0, 1):
            episode = robot.reset_scene(seed)
            result = run_episode(robot, expert, chunks=ChunkConfig(execute_horizon))
            assert result.success, f"seed {seed} at {speed} m/s failed"
            assert result.in_bin == (episode.target_color,)
            assert robot.is_success()
    finally:
        robot.disconnect()


class CountingPolicy(Policy):
    """Chunk n (n = 1, 2, ...) commands 0.01 * n to every key, so each tick's command says which
    chunks it came from."""

    def __init__(self, keys: list[str], steps: int = 50) -> None:
        self.keys, self.steps, self.calls = keys, steps, 0

    def infer(self, observation, instruction):
        self.calls += 1
        return PolicyOutput(np.full((self.steps, len(self.keys)), 0.01 * self.calls, dtype=np.float32))


@pytest.mark.parametrize("blend, chunk_two", [
    (BlendConfig("none"), [0.02, 0.02, 0.02]),  # switches at once
    (BlendConfig("linear", steps=2), [0.01 + 0.01 / 3, 0.01 + 0.02 / 3, 0.02]),  # the console's cross-fade
])
def test_rollout_blends_a_new_chunk_into_the_running_one_as_the_console_does(robot, blend, chunk_two):
    robot.reset_scene(0)
    sent = []
    run_episode(robot, CountingPolicy(list(robot.action_features)), chunks=ChunkConfig(4, blend),
                on_frame=lambda observation, action, source: sent.append((action[JOINT_KEYS[0]], source)))
    commands, sources = zip(*sent[:8])
    assert sources == ("hold",) + ("policy",) * 7
    # tick 0 holds while the first chunk is computed; chunk 1 runs ticks 1-4, chunk 2 from tick 5
    assert commands[1:5] == pytest.approx([0.01] * 4)
    assert commands[5:8] == pytest.approx(chunk_two)


class StepPolicy(Policy):
    """Step i of the k-th chunk (k = 1, 2, ...) commands k + 0.01 * i to every key, so each tick's
    command says which chunk and which of its steps it came from."""

    def __init__(self, keys: list[str], starts_next_tick: bool = False) -> None:
        self.keys, self.chunk_starts_next_tick, self.calls = keys, starts_next_tick, 0

    def infer(self, observation, instruction):
        self.calls += 1
        steps = self.calls + 0.01 * np.arange(50, dtype=np.float32)[:, None]  # (50, 1)
        return PolicyOutput(np.repeat(steps, len(self.keys), axis=1))


@pytest.mark.parametrize("starts_next_tick, first_step", [(False, 1), (True, 0)])
def test_rollout_runs_a_chunk_from_its_step_for_the_next_tick(robot, starts_next_tick, first_step):
    robot.reset_scene(0)
    sent = []
    run_episode(robot, StepPolicy(list(robot.action_features), starts_next_tick), chunks=ChunkConfig(4),
                on_frame=lambda observation, action, source: sent.append(action[JOINT_KEYS[0]]))
    # tick 0 holds while the first chunk is computed from its observation; ticks 1-4 run that chunk
    assert sent[1:5] == pytest.approx([1 + 0.01 * (first_step + i) for i in range(4)])


def test_a_slow_inference_lets_the_running_plan_go_on_and_skips_the_chunks_past_steps(robot):
    robot.reset_scene(0)
    sent = []
    run_episode(robot, StepPolicy(list(robot.action_features)), chunks=ChunkConfig(4, start_early=False), latency_ticks=3,
                on_frame=lambda observation, action, source: sent.append((round(action[JOINT_KEYS[0]], 4), source)))
    assert [source for _, source in sent[:3]] == ["hold"] * 3  # the first chunk is 3 ticks away
    # chunk 1 (observation of tick 0) runs its steps 3-6 at ticks 3-6, then goes on while chunk 2
    # (observation of tick 6) is inferred; chunk 2 takes over at tick 9 with its step for tick 9
    assert [command for command, _ in sent[3:11]] == [1.03, 1.04, 1.05, 1.06, 1.07, 1.08, 2.03, 2.04]
    with pytest.raises(ValueError, match="latency_ticks must be >= 1"):
        run_episode(robot, StepPolicy(list(robot.action_features)), latency_ticks=0)


def test_a_slow_inference_is_asked_for_early_by_the_delay_measured(robot):
    robot.reset_scene(0)
    sent = []
    run_episode(robot, StepPolicy(list(robot.action_features)), chunks=ChunkConfig(4, start_early=True), latency_ticks=3,
                on_frame=lambda observation, action, source: sent.append(round(action[JOINT_KEYS[0]], 4)))
    # chunk 1 (observation of tick 0) takes over at tick 3: a delay of 3 ticks, so chunk 2 is asked
    # for 2 steps before chunk 1 has run 4 (tick 4) and takes over at tick 7 with its step for tick 7:
    # every chunk runs 4 steps, as at one tick of latency, from an observation 3 ticks old
    assert sent[3:13] == [1.03, 1.04, 1.05, 1.06, 2.03, 2.04, 2.05, 2.06, 3.03, 3.04]


def test_expert_follows_the_instruction_even_naming_another_colour(robot, expert):
    episode = robot.reset_scene(2)
    other = next(c for c in episode.colors if c != episode.target_color)
    result = run_episode(robot, expert, instruction=f"Pick up the {other.upper()} block and put it in the bin.")
    assert result.in_bin == (other,)
    assert not result.success  # the scene's own target is still on the belt


def test_expert_chunk_is_absolute_joint_targets(robot, expert):
    robot.reset_scene(0)
    observation = robot.get_observation()
    output = expert.infer(observation, robot.episode.instruction)
    assert output.actions.dtype == np.float32
    assert output.actions.shape == (expert.config.chunk_steps, len(robot.action_features))
    step = np.abs(np.diff(output.actions[:, :-1], axis=0)).max()
    assert step <= expert.config.max_joint_step + 1e-6
    assert "total" in output.timings_ms


def test_expert_rejects_instructions_without_exactly_one_colour(robot, expert):
    robot.reset_scene(0)
    observation = robot.get_observation()
    with pytest.raises(ValueError, match="names no block colour"):
        expert.infer(observation, "pick up the block")
    with pytest.raises(ValueError, match="several colours"):
        parse_target_color("red or blue")
    missing = next(c for c in ("orange", "purple") if c not in robot.episode.colors)
    with pytest.raises(ValueError, match=f"no {missing} block"):
        expert.infer(observation, f"pick up the {missing} block")
    with pytest.raises(ValueError, match="sim_state"):
        expert.infer({}, robot.episode.instruction)


# --- recording demonstrations --------------------------------------------------------------------
def test_collect_keeps_successful_episodes_and_resumes(tmp_path):
    from robot_io.sim import collect

    out = tmp_path / "demos"
    args = ["--episodes", "1", "--out", str(out), "--image-size", str(SMALL_IMAGE)]
    assert collect.main(args) == 0
    assert collect.main(args) == 2  # exists: refuses without --resume
    assert collect.main([*args, "--resume"]) == 0
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["total_episodes"] == 2
    assert info["features"]["observation.images.head"]["shape"] == [SMALL_IMAGE, SMALL_IMAGE, 3]
    assert info["features"]["action"]["names"] == [*JOINT_KEYS, GRIPPER_KEY]


def test_collect_every_target_records_one_scene_under_each_instruction(tmp_path, capsys):
    from robot_io.sim import collect

    out = tmp_path / "paired"
    args = ["--episodes", "2", "--out", str(out), "--seed", "7", "--image-size", str(SMALL_IMAGE), "--every-target"]
    assert collect.main(args) == 0
    saved = [line for line in capsys.readouterr().out.splitlines() if " saved: seed " in line]
    assert len(saved) == 2 and all("seed 7," in line for line in saved)
    colors = [line.split("seed 7, ")[1].split(",")[0] for line in saved]
    assert colors[0] != colors[1]
    assert json.loads((out / "meta" / "info.json").read_text())["total_tasks"] == 2
    assert collect.scene_draws(3, None).__next__() == (3, None)
    draws = collect.scene_draws(3, 2)
    assert [next(draws) for _ in range(3)] == [(3, 0), (3, 1), (4, 0)]
