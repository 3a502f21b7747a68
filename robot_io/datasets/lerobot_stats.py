"""A patch of LeRobot's image statistics: computed on subsampled frames while recording.

LeRobot's streaming encoder updates per-channel image statistics (quantile histograms) on every
full frame below 300 px: 44 CPU-ms per 3-camera frame here, three times the encoding itself.
Statistics from every 4th pixel in each direction are the same estimate for 1/16 of the cost
(LeRobot's own offline path subsamples too), so the recorder lowers that threshold.
"""

from __future__ import annotations

STATS_TARGET_SIZE = 56
STATS_MIN_SIZE_TO_SUBSAMPLE = 112


def subsample_image_stats() -> None:
    """Make LeRobot compute image statistics on subsampled frames (see STATS_TARGET_SIZE)."""
    from lerobot.datasets import compute_stats

    original = compute_stats.auto_downsample_height_width
    if getattr(original, "subsampled_by_recorder", False):
        return

    def subsampled(img, target_size=STATS_TARGET_SIZE, max_size_threshold=STATS_MIN_SIZE_TO_SUBSAMPLE):
        return original(img, target_size=target_size, max_size_threshold=max_size_threshold)

    subsampled.subsampled_by_recorder = True
    compute_stats.auto_downsample_height_width = subsampled


