"""Recording: the mode (full attempts or corrections only), start / save with an outcome /
discard / re-record, where episodes go, and the list of episodes on disk."""

from __future__ import annotations

import html

import gradio as gr

from runtime.control.commands import (
    RECORDING_MODES, DiscardRecording, RerecordEpisode, SetRecordingMode, StartRecording, StopRecording,
)
from runtime.control.recording import RecordingStatus
from runtime.control.session import Session
from ui.operator_gate import OperatorGate

MODE_LABELS = {"attempts": "Full attempts (policy + corrections in one episode)",
               "corrections": "Corrections only (each takeover is its own episode)"}
LISTED_EPISODES = 12  # newest episodes shown; the totals count all of them


def build_recording_panel(session: Session, gate: OperatorGate) -> gr.HTML:
    """The panel's controls; returns the episode list, which the console's timer refreshes."""
    root = session.config.record_root
    on = root is not None
    mode = gr.Radio(choices=[(MODE_LABELS[m], m) for m in RECORDING_MODES], value=session.config.recording_mode,
                    label="Recording mode", interactive=on, elem_id="recording-mode")
    with gr.Row():
        start = gr.Button("● Start episode", elem_id="btn-rec-start", interactive=on)
        stop = gr.Button("■ Stop & save", elem_id="btn-rec-stop", interactive=on)
        success = gr.Button("✓ Save as success", elem_id="btn-rec-success", interactive=on)
        failure = gr.Button("✗ Save as failure", elem_id="btn-rec-failure", interactive=on)
        discard = gr.Button("✕ Discard", elem_id="btn-rec-discard", interactive=on)
        again = gr.Button("↻ Re-record", elem_id="btn-rec-again", interactive=on)
    where = f"Episodes are saved to `{root}` (LeRobot v3.0)." if on else "Recording is off (start with --record-to)."
    gr.Markdown(where, elem_id="recording-info")
    episodes = gr.HTML(render_episodes(None), elem_id="episode-list")
    def set_mode(value: str, request: gr.Request) -> None:
        gate.submit(request, SetRecordingMode(value))

    mode.change(set_mode, inputs=mode)
    start.click(gate.sender(StartRecording()))
    stop.click(gate.sender(StopRecording()))
    success.click(gate.sender(StopRecording(outcome="success")))
    failure.click(gate.sender(StopRecording(outcome="failure")))
    discard.click(gate.sender(DiscardRecording()))
    again.click(gate.sender(RerecordEpisode()))
    return episodes


def render_episodes(status: RecordingStatus | None) -> str:
    if status is None:
        return "<div class='episodes' id='episodes-summary'>No dataset open yet: episodes appear once recording starts.</div>"
    listed = status.episodes
    if not listed:
        return f"<div class='episodes' id='episodes-summary'>{html.escape(status.dataset)}: no episodes saved yet.</div>"
    outcomes = [e.outcome for e in listed]
    summary = (f"{html.escape(status.dataset)}: {len(listed)} episodes, {sum(e.frames for e in listed)} frames · "
               f"{outcomes.count('success')} success, {outcomes.count('failure')} failure, "
               f"{outcomes.count('unknown')} unknown · "
               f"{sum(1 for e in listed if e.intervention_frames > 0)} with corrections")
    rows = "".join(
        f"<tr><td>{e.index}</td><td>{html.escape(e.task)}</td><td>{e.frames}</td>"
        f"<td class='outcome-{e.outcome}'>{e.outcome}</td>"
        f"<td>{'?' if e.intervention_frames < 0 else e.intervention_frames}</td></tr>"
        for e in reversed(listed[-LISTED_EPISODES:])
    )
    return (f"<div class='episodes'><div id='episodes-summary'>{summary}</div>"
            "<table class='episode-table'><tr><th>#</th><th>task</th><th>frames</th><th>outcome</th>"
            f"<th>operator frames</th></tr>{rows}</table></div>")


RECORDING_CSS = """
.episodes { font-family: ui-monospace, monospace; font-size: 0.85em; }
.episode-table { border-collapse: collapse; margin-top: 4px; }
.episode-table td, .episode-table th { border-bottom: 1px solid #e5e7eb; padding: 1px 8px; text-align: left; }
.outcome-success { color: #16a34a; } .outcome-failure { color: #dc2626; } .outcome-unknown { color: #6b7280; }
"""
