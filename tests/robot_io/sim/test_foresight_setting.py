"""The foresight setting of the conveyor (robot_io/sim/foresight_setting.py): the default scene stays
the scene it was, a cover that the cameras cannot see through, a seeded belt speed change, the
limits named on bad input, and the scripted expert still solving it."""

import hashlib
import re

import numpy as np
import pytest

from robot_io.sim import evaluate_expert, scene
from robot_io.sim.conveyor_env import ConveyorEnv, ConveyorSimConfig
from robot_io.sim.foresight_setting import (MAX_COVER_END_X, SPEED_RAMP_S, ForesightSetting, check_recorded_setting,
                                            read_setting, write_setting)
from robot_io.sim.rollout import run_episode
from robot_io.sim.scripted_expert import ScriptedExpert
from robot_io.sim.sim_robot import SIM_STATE_KEY, SimRobot

# The default scene as it was before the setting existed (computed at the start of issue 23's work):
# per seed, the episode drawn and the blocks after 20 ticks of holding the home pose.
PINNED_SCENES = {
    0: (0.10643540247857451, ("green", "blue", "yellow", "red"), "green",
        [[-0.086737, 0.317411, 0.079805], [-0.191011, 0.312624, 0.079798],
         [-0.300202, 0.280105, 0.079852], [-0.401953, 0.314302, 0.079858]]),
    7: (0.10501145599256004, ("green", "red", "blue", "yellow"), "green",
        [[-0.092521, 0.298729, 0.079811], [-0.172943, 0.292121, 0.079843],
         [-0.285689, 0.291137, 0.079743], [-0.397504, 0.290184, 0.079821]]),
}
# sha256 of the default scene's MJCF (4 blocks at 15 Hz, 224 px buffer) and of the geometry model's (no blocks)
PINNED_XML = {
    (4, 224): "bd5361c2a27cf3c2a56baa26d2757bf13be7449c652a2cdc8c60d350466bcf9e",
    (0, scene.DEFAULT_OFFSCREEN_SIZE): "bec91d7323757913be2372d6f2dd6cbd49784cd67b1cf33106b68bce0aeee040",
}


def _xml_hash(num_blocks: int, size: int) -> str:
    config = ConveyorSimConfig()
    timestep = config.control_period / config.substeps if num_blocks else scene.DEFAULT_TIMESTEP
    return hashlib.sha256(scene.build_scene_xml(num_blocks, timestep, size).encode()).hexdigest()


@pytest.mark.parametrize("blocks_and_size", sorted(PINNED_XML))
def test_default_scene_xml_is_unchanged(blocks_and_size):
    assert _xml_hash(*blocks_and_size) == PINNED_XML[blocks_and_size]


@pytest.mark.parametrize("seed", sorted(PINNED_SCENES))
def test_default_scene_is_unchanged(seed):
    env = ConveyorEnv(ConveyorSimConfig(cameras=()))
    speed, colors, target, blocks = PINNED_SCENES[seed]
    spec = env.reset(seed)
    for _ in range(20):
        env.step(env.home_joints, 0.0)
    assert (spec.belt_speed, spec.colors, spec.target_color) == (speed, colors, target)
    np.testing.assert_allclose(env.state().block_positions, blocks, atol=2e-6)


# --- the setting ----------------------------------------------------------------------------------
COVER = ForesightSetting(cover_start=-0.30, cover_length=0.25)
CHANGE = ForesightSetting(speed_change_min=0.03, speed_change_max=0.15)
# Every block of the standard scene starts under this one (the leading block starts by x = -0.22).
LONG_COVER = ForesightSetting(cover_start=scene.BELT_X_START, cover_length=MAX_COVER_END_X - scene.BELT_X_START)


@pytest.mark.parametrize(
    "fields, named",
    [
        ({"cover_start": -0.7, "cover_length": 2.0}, "belt's length 1.30 m"),
        ({"cover_start": -0.9, "cover_length": 0.2}, f"x from {scene.BELT_X_START} to {scene.BELT_X_END} m"),
        ({"cover_start": 0.0, "cover_length": 0.2}, f"end by x = {MAX_COVER_END_X} m"),
        ({"cover_start": -0.3, "cover_length": 0.0}, "cover_length must be > 0"),
        ({"speed_change_min": 0.1, "speed_change_max": 0.9}, f"<= {scene.MAX_BELT_SPEED} m/s"),
        ({"speed_change_min": 0.0, "speed_change_max": 0.1}, "0 < min"),
        ({"speed_change_min": 0.1}, "give both"),
        ({"speed_change_min": 0.05, "speed_change_max": 0.1, "speed_change_after_min_s": 3.0,
          "speed_change_after_max_s": 2.0}, "0 <= min <= max s"),
    ],
)
def test_a_setting_the_scene_cannot_honour_is_refused_with_its_limits(fields, named):
    with pytest.raises(ValueError, match=re.escape(named)):
        ForesightSetting(**fields)


def test_a_speed_change_after_the_episode_ends_is_refused():
    late = ForesightSetting(speed_change_min=0.05, speed_change_max=0.1, speed_change_after_max_s=30.0)
    with pytest.raises(ValueError, match=r"within the episode \(20.0 s\)"):
        ConveyorSimConfig(foresight=late)


def test_commands_refuse_bad_setting_flags_naming_the_limits(capsys):
    with pytest.raises(SystemExit):
        evaluate_expert.parse_args(["--cover-start", "-0.7", "--cover-length", "2"])
    assert "belt's length 1.30 m" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate_expert.parse_args(["--speed-change-min", "0.1", "--speed-change-max", "0.1",
                                    "--speed-change-after-max-s", "25"])
    assert "within the episode" in capsys.readouterr().err
    args = evaluate_expert.parse_args(["--cover-start", "-0.3", "--speed-change-min", "0.05", "--speed-change-max", "0.1"])
    assert args.sim.foresight == ForesightSetting(cover_start=-0.3, speed_change_min=0.05, speed_change_max=0.1)
    assert evaluate_expert.parse_args([]).sim.foresight.is_standard


def _colourful_pixels(frame: np.ndarray) -> int:
    """Pixels as saturated as the blocks' colours; nothing else in the scene is."""
    channels = frame.astype(int)
    return int(((channels.max(axis=2) - channels.min(axis=2)) > 120).sum())


@pytest.mark.parametrize("camera", ["head", "side"])
def test_the_cover_hides_the_blocks_from_the_fixed_cameras(camera):
    frames = {}
    for setting in (ForesightSetting(), LONG_COVER):
        env = ConveyorEnv(ConveyorSimConfig(image_height=96, image_width=96, cameras=(camera,), foresight=setting))
        env.reset(3)
        frames[setting] = env.render(camera)
        env.close()
    assert _colourful_pixels(frames[ForesightSetting()]) > 20  # blocks in view on the open belt
    assert _colourful_pixels(frames[LONG_COVER]) == 0


def test_the_cover_changes_no_draw_of_the_scene():
    plain, covered = ConveyorEnv(ConveyorSimConfig(cameras=())), ConveyorEnv(ConveyorSimConfig(cameras=(), foresight=COVER))
    for seed in (0, 5):
        assert plain.reset(seed) == covered.reset(seed)
        np.testing.assert_array_equal(plain.block_positions(), covered.block_positions())
    assert covered.state().cover_x == pytest.approx((-0.30, -0.05))
    assert plain.state().cover_x is None


def test_the_speed_change_is_drawn_from_the_seed_and_drives_the_belt():
    config = ConveyorSimConfig(cameras=(), foresight=CHANGE)
    env, again = ConveyorEnv(config), ConveyorEnv(config)
    spec = env.reset(4)
    assert again.reset(4) == spec  # the same seed, the same schedule
    assert env.reset(5).speed_change != spec.speed_change
    standard = ConveyorEnv(ConveyorSimConfig(cameras=())).reset(4)
    assert (spec.belt_speed, spec.colors, spec.target_color) == (standard.belt_speed, standard.colors, standard.target_color)
    change = spec.speed_change
    assert CHANGE.speed_change_after_min_s <= change.at_s <= CHANGE.speed_change_after_max_s
    assert CHANGE.speed_change_min <= change.to_speed <= CHANGE.speed_change_max
    assert change.from_speed == spec.belt_speed
    assert "->" in spec.describe_belt()

    env.reset(4)
    speeds = []
    while env.time < change.at_s + SPEED_RAMP_S + 1.0:
        env.step(env.home_joints, 0.0)
        speeds.append((env.time, env.state().belt_speed))
    before = [v for t, v in speeds if t < change.at_s]
    after = [v for t, v in speeds if t > change.at_s + SPEED_RAMP_S]
    assert before and all(v == spec.belt_speed for v in before)
    assert after and all(v == pytest.approx(change.to_speed) for v in after)
    free_block = env.state().block_velocities[-1]  # the last block rides the belt, far from the arm
    assert free_block[0] == pytest.approx(change.to_speed, abs=0.01)


def test_the_scene_geometry_draws_the_cover():
    robot = SimRobot(ConveyorSimConfig(cameras=(), foresight=COVER))
    names = [obj.name for obj in robot.scene_objects()]
    assert sum(name.startswith("cover") for name in names) == 3  # roof and two walls
    assert not any(o.name.startswith("cover") for o in SimRobot(ConveyorSimConfig(cameras=())).scene_objects())


def test_the_expert_grasps_only_once_the_block_is_out_from_under_the_cover():
    setting = ForesightSetting(cover_start=-0.30, cover_length=0.25, speed_change_min=0.05, speed_change_max=0.15)
    robot = SimRobot(ConveyorSimConfig(cameras=(), foresight=setting))
    robot.connect()
    grasped_at: list[float] = []

    def watch(observation, action, source):
        state = observation[SIM_STATE_KEY]
        if state.grasped_index == state.target_index and not grasped_at:
            grasped_at.append(float(state.block_positions[state.target_index, 0]))

    try:
        for seed in (1, 4):
            grasped_at.clear()
            robot.reset_scene(seed)
            assert run_episode(robot, ScriptedExpert(), on_frame=watch).success
            assert grasped_at[0] > setting.cover_x[1]
    finally:
        robot.disconnect()


def test_datasets_keep_their_setting_and_refuse_another(tmp_path):
    assert read_setting(tmp_path) is None
    check_recorded_setting(tmp_path, ForesightSetting())  # a dataset that does not say: the standard conveyor
    with pytest.raises(ValueError, match="another setting"):
        check_recorded_setting(tmp_path, COVER)
    write_setting(tmp_path, COVER)
    assert read_setting(tmp_path) == COVER
    check_recorded_setting(tmp_path, COVER)
    with pytest.raises(ValueError, match="cover over x -0.30 to -0.05 m"):
        check_recorded_setting(tmp_path, CHANGE)
