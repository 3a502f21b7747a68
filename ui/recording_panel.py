"""Start / Stop / Discard episode, and where episodes go."""

from __future__ import annotations

import gradio as gr

from runtime.commands import DiscardRecording, StartRecording, StopRecording
from runtime.session import Session


def build_recording_panel(session: Session) -> gr.Markdown:
    root = session.config.record_root
    with gr.Row():
        start = gr.Button("● Start episode", elem_id="btn-rec-start", interactive=root is not None)
        stop = gr.Button("■ Stop & save", elem_id="btn-rec-stop", interactive=root is not None)
        discard = gr.Button("✕ Discard", elem_id="btn-rec-discard", interactive=root is not None)
    where = f"Episodes are saved to `{root}` (LeRobot v3.0)." if root else "Recording is off (start with --record-to)."
    info = gr.Markdown(where, elem_id="recording-info")
    start.click(lambda: session.submit(StartRecording()))
    stop.click(lambda: session.submit(StopRecording()))
    discard.click(lambda: session.submit(DiscardRecording()))
    return info
