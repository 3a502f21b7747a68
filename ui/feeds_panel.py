"""The live camera feeds: one `<img>` per camera fed by ui/feeds.js from the MJPEG routes in
ui/routes.py, with frames/s and frame age shown under each."""

from __future__ import annotations

import gradio as gr


def build_feeds_panel(camera_names: list[str]) -> gr.HTML:
    tiles = "".join(
        f"<figure class='feed'><img id='feed-{name}' data-camera='{name}' alt='{name} camera'>"
        f"<figcaption id='feed-stats-{name}'>{name} · connecting</figcaption></figure>"
        for name in camera_names
    )
    return gr.HTML(f"<div class='feeds'>{tiles}</div>", elem_id="feeds")


FEEDS_CSS = """
.feeds { display: flex; gap: 8px; flex-wrap: wrap; }
.feed { margin: 0; text-align: center; }
.feed img { width: 320px; height: 320px; object-fit: contain; background: #111; border-radius: 6px; }
.feed figcaption { font-size: 0.85em; color: #666; font-family: ui-monospace, monospace; }
.status { font-family: ui-monospace, monospace; font-size: 0.9em; padding: 2px 0; }
.status.error { color: #dc2626; }
.status.hint { color: #2563eb; }
"""
