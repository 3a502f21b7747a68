"""The console page: panels laid out in one Blocks, one timer polling the session snapshot,
mounted on a FastAPI app beside the feed and teleop routes."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
from fastapi import FastAPI

from runtime.replay_service import ReplayService
from runtime.rerun_log import RerunLogger
from runtime.session import Session
from ui.control_panel import InstructionHistory, build_control_panel
from ui.feeds_panel import FEEDS_CSS, build_feeds_panel
from ui.foresight_panel import FORESIGHT_CSS, build_foresight_panel
from ui.plan_panel import PLAN_CSS, build_plan_panel
from ui.plan_routes import add_plan_routes
from ui.recording_panel import RECORDING_CSS, build_recording_panel, render_episodes
from ui.replay_panel import build_replay_panel
from ui.replay_routes import add_replay_routes
from ui.rerun_page import RERUN_PAGE_PATH, mount_rerun_page
from ui.routes import PLOTLY_ROUTE, add_console_routes
from ui.status_bar import build_event_log, build_status_bar, render_events, render_status

POLL_S = 0.25  # status refresh; camera feeds do not depend on it
PAGE_SCRIPTS = f"<script src='{PLOTLY_ROUTE}' defer></script>" + "".join(
    f"<script>{(Path(__file__).with_name(name)).read_text()}</script>" for name in ("keyboard.js", "gamepad.js", "feeds.js", "foresight.js", "plan.js")
)


def build_console(session: Session, replay: ReplayService | None = None) -> gr.Blocks:
    history = InstructionHistory()
    with gr.Blocks(title="Foresight Console") as console:
        gr.Markdown("## Foresight Console")
        # A new tab: the Rerun viewer on this page would take the CPU the camera feeds need.
        gr.HTML(f'<a id="rerun-link" href="{RERUN_PAGE_PATH}" target="_blank">Plan in Rerun ↗</a>')
        status = build_status_bar()
        build_feeds_panel(session.camera_keys)
        controls = build_control_panel(session, history)
        episodes = build_recording_panel(session)
        build_foresight_panel(session.camera_keys, session.foresight.horizon)
        build_plan_panel()
        if replay is not None:
            build_replay_panel()
        events = build_event_log()

        def poll():
            snapshot = session.snapshot()
            return render_status(snapshot), render_events(snapshot), render_episodes(snapshot.recording if snapshot else None)

        gr.Timer(POLL_S).tick(poll, outputs=[status, events, episodes], show_progress="hidden")

        def on_load():
            snapshot = session.snapshot()
            text = (snapshot.instruction or snapshot.scene_instruction) if snapshot else ""
            return text, gr.update(choices=history.items())

        console.load(on_load, outputs=[controls["instruction"], controls["history"]])
    return console


def build_app(session: Session,
              replay: ReplayService | None = None, rerun: RerunLogger | None = None,
              rerun_off_reason: str = "started with --no-rerun") -> FastAPI:
    app = FastAPI(title="Foresight Console")
    mount_rerun_page(app, rerun, rerun_off_reason)  # before "/", which would catch /rerun
    add_console_routes(app, session)
    add_plan_routes(app, session)
    if replay is not None:
        add_replay_routes(app, replay)
    return gr.mount_gradio_app(
        app, build_console(session, replay), path="/", css=FEEDS_CSS + FORESIGHT_CSS + PLAN_CSS + RECORDING_CSS, head=PAGE_SCRIPTS,
        footer_links=[],
    )
