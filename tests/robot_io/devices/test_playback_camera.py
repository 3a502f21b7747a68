"""The playback camera: a video file written here and an episode of the real G1 dataset, played as a
LeRobot camera (built by LeRobot's own camera factory from the "playback" type)."""

from __future__ import annotations

import time

import av
import numpy as np
import pytest
from lerobot.cameras.utils import make_cameras_from_configs

from robot_io.devices.config_playback_camera import PlaybackCameraConfig, PlaybackSourceError
from robot_io.datasets.reader import open_replay_dataset
from tests.replay_support import G1_V30

VIDEO_FPS = 20
VIDEO_SHAPE = (48, 64, 3)  # (H, W, 3)
FRAMES = 6
LEVEL_STEP = 40  # frame i is a flat picture of value i * LEVEL_STEP
CODEC_TOLERANCE = 6  # H.264 is lossy: a flat frame decodes within a few levels of its value
WAIT_S = 20.0


def write_video(path, frames: int = FRAMES, fps: int = VIDEO_FPS, shape=VIDEO_SHAPE):
    h, w, _ = shape
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(frames):
            picture = np.full(shape, i * LEVEL_STEP, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def camera_for(**config):
    """A connected playback camera built the way a LeRobot robot builds its cameras."""
    camera = make_cameras_from_configs({"front": PlaybackCameraConfig(**config)})["front"]
    camera.connect()
    return camera


def level(frame) -> int:
    return int(np.median(frame))


def wait_for(condition, timeout_s: float = WAIT_S):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (value := condition()) is not None:
            return value
        time.sleep(0.005)
    raise AssertionError(f"not within {timeout_s} s")


def test_a_video_plays_in_order_and_loops(tmp_path):
    config = PlaybackCameraConfig(path=write_video(tmp_path / "clip.mp4"))
    assert (config.fps, config.width, config.height) == (VIDEO_FPS, VIDEO_SHAPE[1], VIDEO_SHAPE[0])  # the source's own
    camera = camera_for(path=tmp_path / "clip.mp4")
    try:
        levels = [level(camera.async_read(timeout_ms=WAIT_S * 1e3)) for _ in range(FRAMES + 2)]
        expected = [(i % FRAMES) * LEVEL_STEP for i in range(FRAMES + 2)]  # from the first (shown at connect), then over
        assert np.allclose(levels, expected, atol=CODEC_TOLERANCE), levels
        assert camera.latest_frame.shape == VIDEO_SHAPE and not camera.latest_frame.flags.writeable
    finally:
        camera.disconnect()
    assert not camera.is_connected


def test_without_loop_the_last_frame_goes_stale_and_says_so(tmp_path):
    camera = camera_for(path=write_video(tmp_path / "clip.mp4"), loop=False, width=32, height=24)
    try:
        wait_for(lambda: True if level(camera.read_latest()) >= (FRAMES - 1) * LEVEL_STEP - CODEC_TOLERANCE else None)
        assert camera.read_latest().shape == (24, 32, 3)  # resized to the configured size
        with pytest.raises(TimeoutError, match="reached the end"):
            wait_for(lambda: camera.read_latest(max_age_ms=100) is None or None)  # read until it raises
    finally:
        camera.disconnect()


def test_a_dataset_episode_plays_the_datasets_own_frames(tmp_path):
    config = PlaybackCameraConfig(path=G1_V30, episode=1, cache_root=tmp_path / "cache")
    assert (config.fps, config.width, config.height, config.camera) == (30, 640, 480, "cam_high")
    dataset = open_replay_dataset(G1_V30, tmp_path / "cache")
    first = next(dataset.frames(dataset.episode(1), "cam_high", [0]))
    camera = camera_for(path=G1_V30, episode=1, cache_root=tmp_path / "cache")
    try:
        np.testing.assert_array_equal(camera.latest_frame, first)  # shown at connect
        assert camera.async_read(timeout_ms=WAIT_S * 1e3).shape == (480, 640, 3)
    finally:
        camera.disconnect()


@pytest.mark.parametrize(("config", "message"), [
    ({"path": "/nonexistent/clip.mp4"}, "nothing to play"),
    ({"path": G1_V30, "camera": "cam_left_wrist"}, r"no camera 'cam_left_wrist'; its cameras are \['cam_high'\]"),
    ({"path": G1_V30, "episode": 5}, "holds episodes 0..4, not 5"),
    ({"path": G1_V30, "episode": -1}, "episode must be an int >= 0"),
    ({"path": G1_V30, "fps": 0}, "fps must be a positive int"),
])
def test_bad_sources_are_refused_with_the_reason(config, message):
    with pytest.raises(PlaybackSourceError, match=message):
        PlaybackCameraConfig(**config)


def test_a_file_that_is_not_a_video_is_refused(tmp_path):
    (tmp_path / "notes.mp4").write_text("not a video")
    with pytest.raises(PlaybackSourceError, match="not a video FFmpeg can read"):
        PlaybackCameraConfig(path=tmp_path / "notes.mp4")
