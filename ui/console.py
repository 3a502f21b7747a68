"""The console page: panels laid out in one Blocks, one timer polling the session snapshot,
mounted on a FastAPI app beside the feed and teleop routes."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
from fastapi import FastAPI

from runtime.control.checkpoint_loader import CheckpointLoader
from runtime.curation.service import CurationService
from runtime.rerun.logger import RerunLogger
from runtime.replay.service import ReplayService
from runtime.control.session import Session
from runtime.training.jobs import TrainingJobs
from ui.access import Access, install_access
from ui.control_panel import InstructionHistory, build_control_panel
from ui.curation_panel import build_curation_panel
from ui.curation_routes import add_curation_routes
from ui.feeds_panel import FEEDS_CSS, build_feeds_panel
from ui.foresight_panel import FORESIGHT_CSS, build_foresight_panel
from ui.model_panel import build_model_panel, render_model_status
from ui.operator_gate import OperatorGate
from ui.plan_panel import PLAN_CSS, build_plan_panel
from ui.plan_routes import add_plan_routes
from ui.recording_panel import RECORDING_CSS, build_recording_panel, render_episodes
from ui.replay_panel import build_replay_panel
from ui.replay_routes import add_replay_routes
from ui.rerun_page import RERUN_PAGE_PATH, mount_rerun_page
from ui.routes import PLOTLY_ROUTE, add_console_routes
from ui.status_bar import build_event_log, build_status_bar, render_events, render_status
from ui.train_panel import build_train_panel
from ui.train_routes import add_train_routes

POLL_S = 0.25  # status refresh; camera feeds do not depend on it
PAGE_SCRIPTS = f"<script src='{PLOTLY_ROUTE}' defer></script>" + "".join(
    f"<script>{(Path(__file__).with_name(name)).read_text()}</script>" for name in ("keyboard.js", "gamepad.js", "feeds.js", "foresight.js", "plan.js")
)


@dataclass
class ConsoleParts:
    """The optional services the page shows beside the session (None: that panel is left out)."""

    rerun: RerunLogger | None = None
    rerun_off_reason: str = "started with --no-rerun"
    replay: ReplayService | None = None
    checkpoints: CheckpointLoader | None = None  # hot swap of the model
    curation: CurationService | None = None  # the dataset panel
    training: TrainingJobs | None = None  # training from the browser
    access: Access = field(default_factory=lambda: Access(None))  # loopback: everyone operates


def build_console(session: Session, parts: ConsoleParts) -> gr.Blocks:
    history = InstructionHistory()
    gate = OperatorGate(session, parts.access)
    with gr.Blocks(title="Foresight Console") as console:
        gr.Markdown("## Foresight Console")
        # A new tab: the Rerun viewer on this page would take the CPU the camera feeds need.
        gr.HTML(f'<a id="rerun-link" href="{RERUN_PAGE_PATH}" target="_blank">Plan in Rerun ↗</a>')
        user = gr.HTML("", elem_id="user-line")
        status = build_status_bar()
        model = build_model_panel(session, parts.checkpoints, gate)
        build_feeds_panel(session.camera_keys)
        controls = build_control_panel(session, history, gate)
        episodes = build_recording_panel(session, gate)
        build_foresight_panel(session.camera_keys, session.foresight.horizon)
        build_plan_panel()
        if parts.replay is not None:
            build_replay_panel()
        if parts.curation is not None:
            build_curation_panel()
        if parts.training is not None:
            build_train_panel()
        events = build_event_log()

        def poll():
            snapshot = session.snapshot()
            return (render_status(snapshot), render_events(snapshot), render_episodes(snapshot.recording if snapshot else None),
                    render_model_status(session, parts.checkpoints))

        gr.Timer(POLL_S).tick(poll, outputs=[status, events, episodes, model], show_progress="hidden")

        def on_load(request: gr.Request):
            snapshot = session.snapshot()
            text = (snapshot.instruction or snapshot.scene_instruction) if snapshot else ""
            return text, gr.update(choices=history.items()), render_user(parts.access, request)

        console.load(on_load, outputs=[controls["instruction"], controls["history"], user])
    return console


def render_user(access: Access, request: gr.Request) -> str:
    """Who this browser is logged in as (nothing on an open loopback console)."""
    if not access.required:
        return ""
    name = getattr(request, "username", None) or "?"
    role = "operator" if access.may_operate(name) else "viewer: you can watch, not drive"
    return f"<div class='status' id='user-name'>logged in as <b>{html.escape(name)}</b> ({role})</div>"


def build_app(session: Session, parts: ConsoleParts | None = None) -> FastAPI:
    parts = parts or ConsoleParts()
    app = FastAPI(title="Foresight Console")
    install_access(app, parts.access)
    mount_rerun_page(app, parts.rerun, parts.rerun_off_reason, parts.access)  # before "/", which would catch /rerun
    add_console_routes(app, session)
    add_plan_routes(app, session)
    if parts.replay is not None:
        add_replay_routes(app, parts.replay)
    if parts.curation is not None:
        add_curation_routes(app, parts.curation)
    if parts.training is not None:
        add_train_routes(app, parts.training, parts.checkpoints)
    return gr.mount_gradio_app(
        app, build_console(session, parts), path="/", css=FEEDS_CSS + FORESIGHT_CSS + PLAN_CSS + RECORDING_CSS,
        head=PAGE_SCRIPTS, footer_links=[],
        auth_dependency=parts.access.auth_dependency,
    )
