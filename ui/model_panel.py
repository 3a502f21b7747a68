"""Which model drives, and loading another checkpoint without a restart (after a fine-tune)."""

from __future__ import annotations

import html

import gradio as gr

from runtime.control.checkpoint_loader import CheckpointLoader
from runtime.control.session import Session
from ui.operator_gate import OperatorGate


def build_model_panel(session: Session, loader: CheckpointLoader | None, gate: OperatorGate) -> gr.HTML:
    """The model row; returns its status line, which the console's timer refreshes."""
    with gr.Row():
        status = gr.HTML(render_model_status(session, loader), elem_id="model-status")
    if loader is None:
        return status
    with gr.Row():
        choices = [str(p) for p in loader.checkpoints()]
        folder = gr.Dropdown(choices=choices, value=None, allow_custom_value=True, scale=4, elem_id="checkpoint-folder",
                             label=f"Checkpoint folder (under {', '.join(map(str, loader.roots))})")
        refresh = gr.Button("⟳ List", scale=1, elem_id="btn-checkpoints")
        load = gr.Button("⇪ Load (the robot holds)", scale=1, elem_id="btn-load-checkpoint")

    def on_load(path: str | None, request: gr.Request) -> None:
        if not gate.allowed(request, f"load checkpoint {path}"):
            return
        try:
            loader.request(path or "")
        except ValueError as err:
            gr.Warning(str(err))

    load.click(on_load, inputs=folder)
    refresh.click(lambda: gr.update(choices=[str(p) for p in loader.checkpoints()]), outputs=folder)
    return status


def render_model_status(session: Session, loader: CheckpointLoader | None) -> str:
    line = f"<b>Model:</b> <span id='model-label'>{html.escape(session.policy_label)}</span>"
    if loader is not None:
        status = loader.status()
        if status.loading or status.message:
            line += f" · {html.escape(status.message)}"
        if status.error:
            line += f" · <span class='status error' id='model-error'>⚠ {html.escape(status.error)}</span>"
    return f"<div class='status'>{line}</div>"
