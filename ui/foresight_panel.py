"""Foresight beside reality: per camera the live frame next to the latest predicted frame t+H,
the reckoning (prediction | what really came | difference heat map) once t+H arrives, and a chart
of PSNR over time against the "nothing moves" baseline.

Static HTML only: ui/foresight.js fills it from the routes in ui/routes.py (a long-poll on
/api/foresight wakes it the moment an inference lands; the chart re-reads
/api/foresight/history at most once a second), so the panel costs Gradio's queue nothing.
"""

from __future__ import annotations

import html

import gradio as gr

from runtime.control.foresight_reckoning import NO_INFERENCE_MESSAGE


def build_foresight_panel(camera_names: list[str], horizon: int) -> gr.HTML:
    tiles = "".join(_camera_tile(name, horizon) for name in camera_names)
    message = html.escape(NO_INFERENCE_MESSAGE)
    return gr.HTML(
        f"<div class='foresight' id='foresight' data-horizon='{horizon}'>"
        f"<h3>Foresight: what the model expects {horizon} ticks ahead, and what came</h3>"
        f"<div class='foresight-message' id='foresight-message'>{message}</div>"
        f"<div class='foresight-cams' id='foresight-cams'>{tiles}</div>"
        "<div class='foresight-note' id='foresight-note'></div>"
        "<div class='foresight-plot' id='foresight-plot'></div>"
        "<div class='foresight-plot' id='foresight-latent-plot' style='display:none'></div>"
        "</div>",
        elem_id="foresight-panel",
    )


def _camera_tile(name: str, horizon: int) -> str:
    return (
        f"<div class='foresight-cam' data-foresight-camera='{name}'>"
        "<div class='foresight-pair'>"
        f"<figure><img id='fs-live-{name}' alt='{name} live'><figcaption>{name} · live</figcaption></figure>"
        f"<figure><img id='fs-pred-{name}' alt='{name} foresight'>"
        f"<figcaption id='fs-pred-cap-{name}'>{name} · foresight t+{horizon}</figcaption></figure>"
        "</div>"
        f"<figure class='reckoning'><img id='fs-reck-{name}' alt='{name} reckoning'>"
        f"<figcaption id='fs-reck-cap-{name}'>reckoning: a prediction is judged {horizon} ticks after it is made</figcaption>"
        "</figure></div>"
    )


FORESIGHT_CSS = """
.foresight h3 { margin: 4px 0; }
.foresight-message { font-family: ui-monospace, monospace; color: #2563eb; padding: 4px 0; }
.foresight-message:empty { display: none; }
.foresight-cams { display: flex; gap: 12px; flex-wrap: wrap; }
.foresight-cam { display: flex; flex-direction: column; gap: 4px; }
.foresight-pair { display: flex; gap: 4px; }
.foresight figure { margin: 0; text-align: center; }
.foresight-pair img { width: 160px; height: 160px; object-fit: contain; background: #111; border-radius: 4px; }
.foresight .reckoning img { width: 324px; height: 108px; object-fit: contain; background: #111; border-radius: 4px; }
.foresight figcaption { font-size: 0.8em; color: #666; font-family: ui-monospace, monospace; max-width: 324px; }
.foresight-note { font-size: 0.8em; color: #666; }
.foresight-plot { width: 100%; max-width: 1000px; height: 300px; }
"""
