"""The status bar's text for what the session reports."""

import dataclasses

from robot_io.chunks.blending import Seam, SeamStats
from runtime.control.commands import RunPolicy
from runtime.control.session import Session, SessionConfig
from tests.fakes import ConstantPolicy, FakeRobot
from tests.session_support import wait_until
from ui.status_bar import render_status


def test_the_seam_says_blended_only_when_blending_changed_the_switch():
    session = Session(FakeRobot(), ConstantPolicy(), SessionConfig(fps=30))
    session.start()
    try:
        snapshot = wait_until(lambda s: s.tick > 2, session)
    finally:
        session.close()

    def status(raw, blended):
        seam = Seam(tick=5, chunk_id=2, raw=raw, blended=blended, overlap=3)
        return render_status(dataclasses.replace(snapshot, seams=SeamStats(last=seam, history=(seam,))))

    assert "seam 0.120 → 0.040 blended" in status(0.12, 0.04)
    unblended = status(0.12, 0.12)  # --blend none: the new chunk as it is
    assert "seam 0.120" in unblended and "blended" not in unblended


def test_the_inference_delay_is_shown_against_the_execute_horizon_and_red_when_it_reaches_it():
    session = Session(FakeRobot(), ConstantPolicy(), SessionConfig(fps=30))
    session.start()
    try:
        session.submit(RunPolicy("go"))
        snapshot = wait_until(lambda s: s.inference_delay_ticks is not None, session)  # a chunk has taken over
    finally:
        session.close()
    assert snapshot.execute_horizon == SessionConfig().chunks.execute_horizon
    assert f"delay {snapshot.inference_delay_ticks} / horizon {snapshot.execute_horizon} ticks" in render_status(snapshot)
    late = render_status(dataclasses.replace(snapshot, inference_delay_ticks=snapshot.execute_horizon))
    assert "#dc2626" in late.split("status-delay")[1].split("</span>")[0]
