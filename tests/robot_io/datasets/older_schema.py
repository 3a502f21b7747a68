"""Datasets of the schema before the context columns (surprise_score, intervention_segment), as
everything recorded before them is (recordings/conveyor_paired): EpisodeRecorder writes one inside
`older_schema(monkeypatch)`."""

import contextlib

from robot_io.datasets import recorder, schema

CONTEXT_KEYS = (schema.SURPRISE_KEY, schema.SEGMENT_KEY)


def _older(features: dict) -> dict:
    return {key: value for key, value in features.items() if key not in CONTEXT_KEYS}


@contextlib.contextmanager
def older_schema(monkeypatch):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    add_frame = LeRobotDataset.add_frame
    with monkeypatch.context() as patch:
        patch.setattr(recorder, "dataset_features", lambda *args: _older(schema.dataset_features(*args)))
        patch.setattr(LeRobotDataset, "add_frame", lambda self, frame: add_frame(self, _older(frame)))
        yield
