"""The chunk flags of every command that runs a policy's chunks (app.py, model.evaluate,
runtime.collect_corrections, robot_io.sim.evaluate_expert, bench.bench_console): one set of names,
generated from ChunkConfig and BlendConfig so each default is written once, there."""

from __future__ import annotations

import argparse

from robot_io.chunks.blending import BlendConfig
from robot_io.chunks.schedule import ChunkConfig
from robot_io.config_flags import FlagGroup, add_config_flags, config_from_flags

CHUNK_FLAGS = FlagGroup(ChunkConfig, ("execute_horizon", "start_early", "guided"))
BLEND_FLAGS = FlagGroup(BlendConfig, ("mode", "steps", "ensemble_k"),
                        names={"mode": "blend", "steps": "blend-steps", "ensemble_k": "blend-k"})


def add_chunk_flags(parser: argparse.ArgumentParser) -> None:
    """--execute-horizon, --start-early, --guided, --blend, --blend-steps, --blend-k."""
    add_config_flags(parser, CHUNK_FLAGS)
    add_config_flags(parser, BLEND_FLAGS)


def chunks_from_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> ChunkConfig:
    """The ChunkConfig of add_chunk_flags' flags; a value it refuses stops the command with the reason."""
    blend = config_from_flags(parser, args, BLEND_FLAGS)
    return config_from_flags(parser, args, CHUNK_FLAGS, blend=blend)
