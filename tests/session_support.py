"""Waiting on a running session's snapshots, or on its routes' JSON, with a bound, for tests."""

import time


def wait_until(predicate, session, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        snapshot = session.snapshot()
        if snapshot is not None and predicate(snapshot):
            return snapshot
        time.sleep(0.005)
    last = session.snapshot()
    brief = None if last is None else (last.tick, last.mode, last.action_source, last.last_error, last.recording)
    raise AssertionError(f"condition not met within {timeout_s}s; last (tick, mode, source, error, recording): {brief}")


def wait_for_json(client, path, predicate, timeout_s=10.0) -> dict:
    """Poll a console route (a TestClient's GET `path`) until its JSON answer meets `predicate`."""
    deadline = time.monotonic() + timeout_s
    answer = client.get(path).json()
    while not predicate(answer) and time.monotonic() < deadline:
        time.sleep(0.02)
        answer = client.get(path).json()
    assert predicate(answer), answer
    return answer
