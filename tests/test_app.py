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
