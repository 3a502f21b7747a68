"""The foresight setting of the conveyor (robot_io/sim/foresight_setting.py): the default scene stays
the scene it was, a cover that the cameras cannot see through, a seeded belt speed change, the
limits named on bad input, and the scripted expert still solving it."""

import hashlib

import numpy as np
import pytest

from robot_io.sim import scene
from robot_io.sim.conveyor_env import ConveyorEnv, ConveyorSimConfig

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
