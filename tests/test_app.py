"""app.py's refusals, before anything starts."""

import pytest

from app import main, parse_args
from robot_io.chunks.blending import BlendConfig


def test_an_address_other_than_loopback_needs_logins(capsys):
    assert main(["--host", "0.0.0.0", "--no-record", "--no-rerun"]) == 2
    assert "needs logins" in capsys.readouterr().err


def test_a_users_file_that_cannot_be_read_is_named(tmp_path, capsys):
    missing = tmp_path / "users.json"
    assert main(["--host", "0.0.0.0", "--users", str(missing), "--no-record", "--no-rerun"]) == 2
    assert str(missing) in capsys.readouterr().err


def test_chunk_blending_is_chosen_by_flags_and_checked(capsys):
    assert parse_args([]).chunks.blend == BlendConfig()  # the session's own default
    assert parse_args(["--blend", "linear", "--blend-steps", "3"]).chunks.blend == BlendConfig("linear", steps=3)
    with pytest.raises(SystemExit):
        parse_args(["--blend", "exponential", "--blend-k", "-1"])
    assert "ensemble_k must be a finite number >= 0" in capsys.readouterr().err


def test_chunk_steps_per_inference_is_chosen_by_a_flag_and_checked(capsys):
    from robot_io.chunks.schedule import ChunkConfig
    from runtime.control.session import SessionConfig

    assert parse_args([]).chunks == ChunkConfig() == SessionConfig().chunks
    assert parse_args(["--execute-horizon", "3"]).chunks.execute_horizon == 3
    with pytest.raises(SystemExit):
        parse_args(["--execute-horizon", "0"])
    assert "execute_horizon must be a whole number of chunk steps >= 1, got 0" in capsys.readouterr().err


def test_session_flags_carry_the_session_config_defaults_and_its_refusals(capsys):
    from pathlib import Path

    from runtime.control.session import SessionConfig
    from runtime.control.surprise import SurpriseConfig

    assert parse_args([]).session == SessionConfig(record_root=Path("recordings/console"))
    args = parse_args(["--no-record", "--seed", "none", "--recording-mode", "corrections", "--auto-hold",
                       "--auto-hold-seam", "0.2", "--on-exit", "discard"])
    assert args.session.record_root is None and args.session.scene_seed is None
    assert args.session.recording_mode == "corrections" and not args.session.save_on_exit
    assert args.session.surprise == SurpriseConfig(enabled=True, max_seam=0.2)
    with pytest.raises(SystemExit):
        parse_args(["--recording-mode", "everything"])
    assert "recording_mode must be one of" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--workspace=0,0,0,1,1"])
    assert "workspace" in capsys.readouterr().err.lower()


def test_surprise_calibration_and_foresight_setting_flags(tmp_path, capsys):
    from robot_io.sim.foresight_setting import ForesightSetting
    from robot_io.surprise_calibration import CALIBRATION_FILE, SurpriseCalibration

    calibration = SurpriseCalibration.from_scores([-20.0 - k for k in range(9)], 0.1, "episode", 9)
    calibration.save(tmp_path / CALIBRATION_FILE)
    assert parse_args(["--checkpoint", str(tmp_path)]).session.surprise.calibration == calibration  # found beside it
    assert parse_args(["--checkpoint", str(tmp_path), "--policy", "expert"]).session.surprise.calibration is None
    given = parse_args(["--auto-hold-calibration", str(tmp_path / CALIBRATION_FILE)])
    assert given.session.surprise.calibration == calibration
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(SystemExit):
        parse_args(["--auto-hold-calibration", str(tmp_path / "bad.json")])
    assert "is not a surprise calibration" in capsys.readouterr().err
    args = parse_args(["--cover-start", "-0.3", "--cover-length", "0.2"])
    assert args.setting == ForesightSetting(cover_start=-0.3, cover_length=0.2)
    with pytest.raises(SystemExit):
        parse_args(["--speed-change-min", "0.1", "--speed-change-max", "0.7"])
    assert "<= 0.5 m/s" in capsys.readouterr().err
