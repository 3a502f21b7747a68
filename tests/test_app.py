"""app.py's refusals, before anything starts."""

from app import main


def test_an_address_other_than_loopback_needs_logins(capsys):
    assert main(["--host", "0.0.0.0", "--no-record", "--no-rerun"]) == 2
    assert "needs logins" in capsys.readouterr().err


def test_a_users_file_that_cannot_be_read_is_named(tmp_path, capsys):
    missing = tmp_path / "users.json"
    assert main(["--host", "0.0.0.0", "--users", str(missing), "--no-record", "--no-rerun"]) == 2
    assert str(missing) in capsys.readouterr().err
