"""The console's session flags (app.py), generated from SessionConfig, SurpriseConfig and
PolicyProcessConfig so each default and its help are written once, on the dataclass field; the
benchmarks that start the console pass the process flags on with `process_argv`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from robot_io.config_flags import FlagGroup, add_config_flags, config_from_flags
from runtime.control.policy_process import PolicyProcessConfig
from runtime.control.session_config import SessionConfig
from runtime.control.surprise import SurpriseConfig
from robot_io.surprise_calibration import CALIBRATION_FILE, CalibrationError, calibration_for

SESSION_FLAGS = FlagGroup(SessionConfig, ("fps", "scene_seed", "recording_mode", "stale_frame_ms", "realtime_priority"),
                          names={"scene_seed": "seed"})
SURPRISE_FLAGS = FlagGroup(SurpriseConfig, ("enabled", "min_foresight_psnr_db", "max_seam"),
                           names={"enabled": "auto-hold", "min_foresight_psnr_db": "auto-hold-psnr",
                                  "max_seam": "auto-hold-seam"})

PROCESS_FLAGS = FlagGroup(PolicyProcessConfig, ("threads", "hang_timeout_s"), prefix="policy-")
POLICY_PROCESS = True  # a model runs in its own process unless told (bench.bench_console measures both)


def add_session_flags(parser: argparse.ArgumentParser) -> None:
    """--fps, --seed, --recording-mode, --stale-frame-ms, --realtime-priority and the --auto-hold* flags."""
    add_config_flags(parser, SESSION_FLAGS)
    add_config_flags(parser, SURPRISE_FLAGS)
    parser.add_argument("--auto-hold-calibration", type=Path, default=None, metavar="FILE",
                        help="surprise calibration (python -m runtime.calibrate_surprise): auto-hold uses its threshold "
                             "instead of --auto-hold-psnr and the page shows the calibrated score (default: "
                             f"{CALIBRATION_FILE} beside the checkpoint, where there is one)")


def session_from_flags(parser: argparse.ArgumentParser, args: argparse.Namespace, checkpoint: Path | None = None,
                       **fixed: Any) -> SessionConfig:
    """The SessionConfig of add_session_flags' flags plus `fixed` fields that are not flags of their own;
    `checkpoint` the model's folder, whose calibration is used unless --auto-hold-calibration names one.
    A value it refuses stops the command with the reason."""
    try:
        calibration = calibration_for(checkpoint, args.auto_hold_calibration)
    except CalibrationError as err:
        parser.error(str(err))
    surprise = config_from_flags(parser, args, SURPRISE_FLAGS, calibration=calibration)
    return config_from_flags(parser, args, SESSION_FLAGS, surprise=surprise, **fixed)


def add_process_flags(parser: argparse.ArgumentParser) -> None:
    """--policy-process / --no-policy-process, --policy-threads, --policy-hang-timeout-s."""
    parser.add_argument("--policy-process", action=argparse.BooleanOptionalAction, default=POLICY_PROCESS,
                        help="run the model in its own process, frames through shared memory, so inference does not "
                             "share the console's interpreter (runtime/control/policy_process.py)")
    add_config_flags(parser, PROCESS_FLAGS)


def process_from_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> PolicyProcessConfig | None:
    """How the model's process runs, or None for the console's own process."""
    config = config_from_flags(parser, args, PROCESS_FLAGS)
    return config if args.policy_process else None


def process_argv(config: PolicyProcessConfig | None) -> list[str]:
    """The app.py flags that give its policy this process config (None: in the console's process)."""
    if config is None:
        return ["--no-policy-process"]
    return ["--policy-process", "--policy-threads", str(config.threads), "--policy-hang-timeout-s", str(config.hang_timeout_s)]
