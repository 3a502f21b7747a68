"""The console's session flags (app.py), generated from SessionConfig and SurpriseConfig so each
default and its help are written once, on the dataclass field."""

from __future__ import annotations

import argparse
from typing import Any

from robot_io.config_flags import FlagGroup, add_config_flags, config_from_flags
from runtime.control.session_config import SessionConfig
from runtime.control.surprise import SurpriseConfig

SESSION_FLAGS = FlagGroup(SessionConfig, ("fps", "scene_seed", "recording_mode", "stale_frame_ms", "realtime_priority"),
                          names={"scene_seed": "seed"})
SURPRISE_FLAGS = FlagGroup(SurpriseConfig, ("enabled", "min_foresight_psnr_db", "max_seam"),
                           names={"enabled": "auto-hold", "min_foresight_psnr_db": "auto-hold-psnr",
                                  "max_seam": "auto-hold-seam"})


def add_session_flags(parser: argparse.ArgumentParser) -> None:
    """--fps, --seed, --recording-mode, --stale-frame-ms, --realtime-priority and the --auto-hold* flags."""
    add_config_flags(parser, SESSION_FLAGS)
    add_config_flags(parser, SURPRISE_FLAGS)


def session_from_flags(parser: argparse.ArgumentParser, args: argparse.Namespace, **fixed: Any) -> SessionConfig:
    """The SessionConfig of add_session_flags' flags plus `fixed` fields that are not flags of their own;
    a value it refuses stops the command with the reason."""
    surprise = config_from_flags(parser, args, SURPRISE_FLAGS)
    return config_from_flags(parser, args, SESSION_FLAGS, surprise=surprise, **fixed)
