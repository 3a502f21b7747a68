"""The status bar and event log: mode, loop rate and jitter, scene, episode, recording, errors."""

from __future__ import annotations

import html
from collections.abc import Mapping

import gradio as gr

from runtime.control.snapshot import Snapshot
from runtime.control.surprise import SurpriseGauge

SHOWN_QUEUE_MS = 1.0  # a remote server's batching wait is shown once it reaches this
LATE_COLOUR = "#dc2626"  # the inference delay has reached the execute horizon: chunks arrive late
MODE_COLOURS = {"idle": "#6b7280", "running": "#16a34a", "paused": "#d97706", "takeover": "#2563eb", "estop": "#dc2626",
                "homing": "#7c3aed"}


def build_status_bar() -> gr.HTML:
    return gr.HTML(render_status(None), elem_id="status-bar")


def build_event_log() -> gr.Textbox:
    return gr.Textbox(label="Events", lines=6, max_lines=6, interactive=False, elem_id="event-log", autoscroll=True)


def render_status(snapshot: Snapshot | None) -> str:
    if snapshot is None:
        return "<div class='status'>Starting…</div>"
    loop = snapshot.loop
    mode = snapshot.mode.value
    cells = [
        f"<b style='color:{MODE_COLOURS[mode]}' id='status-mode'>{mode.upper()}</b>",
        f"loop <span id='status-hz'>{loop.achieved_hz:.1f}</span> Hz · jitter p50 {loop.period_error_p50_ms:.1f} / "
        f"p99 {loop.period_error_p99_ms:.1f} ms · missed {loop.missed_ticks}",
        f"tick {snapshot.tick}",
        f"scene: {html.escape(snapshot.scene)}",
    ]
    if snapshot.controller is not None:
        cells.append(f"<b id='status-controller' style='color:#2563eb'>control: {html.escape(snapshot.controller)}</b>")
    if snapshot.success is not None:
        cells.append("<b style='color:#16a34a'>success</b>" if snapshot.success else "not done")
    if snapshot.inference_ms is not None:
        cells.append(render_inference(snapshot.inference_ms, snapshot.inference_timings_ms))
    if snapshot.inference_delay_ticks is not None:
        late = snapshot.inference_delay_ticks >= snapshot.execute_horizon
        cells.append(f"<span id='status-delay' title='ticks from an observation to its chunk taking over, against the "
                     f"steps a chunk runs before the next is asked for' style='color:{LATE_COLOUR if late else 'inherit'}'>"
                     f"delay {snapshot.inference_delay_ticks} / horizon {snapshot.execute_horizon} ticks</span>")
    if snapshot.surprise_gauge is not None:
        cells.append(render_gauge(snapshot.surprise_gauge))
    if snapshot.seams.last is not None:
        seam = snapshot.seams.last
        # "→ blended" only where blending changed the switch (not with --blend none)
        blended = f" → {seam.blended:.3f} blended" if seam.blended != seam.raw else ""
        cells.append(f"<span id='status-seam' title='largest joint jump at the last chunk switch'>"
                     f"seam {seam.raw:.3f}{blended}</span>")
    if snapshot.recording is not None:
        rec = snapshot.recording
        state = f"<b style='color:#dc2626' id='status-rec'>● REC {rec.episode_frames} frames</b>" if rec.active else "<span id='status-rec'>not recording</span>"
        cells.append(f"{state} · {rec.saved_episodes} saved · backlog {rec.backlog}")
    body = " &nbsp;|&nbsp; ".join(cells)
    rows = [f"<div class='status'>{body}</div>"]
    if snapshot.instruction:
        rows.append(f"<div class='status'>instruction: <i>{html.escape(snapshot.instruction)}</i></div>")
    if snapshot.hint:
        rows.append(f"<div class='status hint'>{html.escape(snapshot.hint)}</div>")
    if snapshot.device_fault:
        rows.append(f"<div class='status error' id='status-device-fault'>⚠ {html.escape(snapshot.device_fault)}: "
                    "holding. <b>Reconnect</b> when it is back.</div>")
    if snapshot.stale_cameras:
        names = ", ".join(snapshot.stale_cameras)
        rows.append(f"<div class='status error' id='status-stale'>⚠ stale camera: {html.escape(names)} (no fresh frame): holding.</div>")
    error = snapshot.last_error or (snapshot.recording.error if snapshot.recording else "")
    if error and not (snapshot.device_fault and error.startswith(snapshot.device_fault)):  # said just above
        rows.append(f"<div class='status error' id='status-error'>⚠ {html.escape(error)}</div>")
    return "\n".join(rows)


def render_gauge(gauge: SurpriseGauge) -> str:
    """The calibrated surprise score of the latest judged prediction (robot_io/surprise_calibration.py)."""
    title = (f"foresight judged at tick {gauge.tick}: {gauge.psnr_db:.1f} dB; the share of successful calibration "
             f"runs' predictions at least this bad is {gauge.p_value:.2f}; the alarm is below {gauge.threshold_psnr_db:.1f} dB "
             f"({gauge.false_alarm:g} false alarms)")
    colour = LATE_COLOUR if gauge.alarm else "inherit"
    word = "SURPRISE" if gauge.alarm else "surprise"
    return (f"<span id='status-surprise' title='{html.escape(title)}' style='color:{colour}'>"
            f"{word} p {gauge.p_value:.2f} · {gauge.psnr_db:.1f} dB / alarm &lt; {gauge.threshold_psnr_db:.1f}</span>")


def render_inference(total_ms: float, timings_ms: Mapping[str, float]) -> str:
    """"inference X ms", split into the server's model time and the network when the policy is remote."""
    if "network" not in timings_ms:
        return f"inference {total_ms:.0f} ms"
    queue_ms = timings_ms.get("queue", 0.0)
    queued = f" + queue {queue_ms:.0f}" if queue_ms >= SHOWN_QUEUE_MS else ""
    return (f"<span id='status-inference'>inference {total_ms:.0f} ms (model {timings_ms.get('model', 0.0):.0f}"
            f"{queued} + network {timings_ms['network']:.0f})</span>")


def render_events(snapshot: Snapshot | None) -> str:
    return "" if snapshot is None else "\n".join(snapshot.events[-20:])
