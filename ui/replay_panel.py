"""Open-loop replay on the console page: pick a dataset and an episode, map its cameras to the
policy's, start; watch progress, predicted against recorded actions per dimension, foresight
against the recorded frame t+H, the episode's figures; download them as JSON.

A closed accordion: Gradio mounts its content when first opened, and only then loads
ui/replay.js (from ui/replay_routes.py, through gr.HTML's `head`), so a page that never opens it
pays nothing. Static HTML here; the script fills it from the /api/replay routes and polls them
only while a replay runs.
"""

from __future__ import annotations

import gradio as gr

from ui.lazy_panel import build_lazy_panel
from ui.replay_routes import SCRIPT_ROUTE

PANEL_HTML = """
<div class='replay' id='replay'>
  <div class='replay-form'>
    <label>Dataset <select id='replay-dataset'></select></label>
    <label>Episode <select id='replay-episode'></select></label>
    <label title="policy_camera=dataset_camera, comma separated; empty: the same names">Cameras
      <input id='replay-cameras' placeholder='e.g. head=cam_high (empty: same names)'></label>
    <label>Infer every <input id='replay-every' type='number' min='1' value='1'> steps</label>
    <label>At most <input id='replay-max' type='number' min='1' placeholder='all'> steps</label>
    <label>Instruction <input id='replay-instruction' placeholder="empty: the episode's own task"></label>
  </div>
  <div class='replay-buttons'>
    <button id='replay-start'>Start replay</button>
    <button id='replay-stop'>Stop</button>
    <a id='replay-download' href='/api/replay/result.json' download>Download JSON</a>
    <button id='replay-refresh' title='look for datasets again'>Rescan datasets</button>
  </div>
  <div class='replay-info' id='replay-info'></div>
  <div class='replay-status'><progress id='replay-progress' max='1' value='0'></progress>
    <span id='replay-message'>Loading the datasets…</span></div>
  <table class='replay-metrics' id='replay-metrics'></table>
  <div class='replay-pictures' id='replay-pictures'></div>
  <div class='replay-plot' id='replay-psnr-plot'></div>
  <div class='replay-plot' id='replay-actions-plot'></div>
</div>
"""

REPLAY_CSS = """
.replay-form, .replay-buttons { display: flex; flex-wrap: wrap; gap: 8px 16px; align-items: center; margin: 4px 0; }
.replay label { font-size: 0.9em; }
.replay select, .replay input { border: 1px solid #bbb; border-radius: 4px; padding: 2px 4px; }
.replay input::placeholder { color: #999; }
#replay-dataset { width: 260px; } #replay-episode { width: 70px; }
#replay-cameras, #replay-instruction { width: 280px; } #replay-every, #replay-max { width: 64px; }
.replay button { padding: 2px 12px; border-radius: 4px; border: 1px solid #999; cursor: pointer; font-size: 0.9em; font-weight: normal; }
.replay button:disabled { opacity: 0.5; cursor: default; }
.replay a { font-size: 0.9em; }
.replay-info, .replay-status { font-family: ui-monospace, monospace; font-size: 0.85em; margin: 4px 0; }
.replay-status.failed { color: #dc2626; }
.replay progress { width: 240px; vertical-align: middle; }
.replay-metrics { border-collapse: collapse; font-family: ui-monospace, monospace; font-size: 0.85em; margin: 6px 0; }
.replay-metrics td, .replay-metrics th { border: 1px solid #ddd; padding: 2px 8px; text-align: right; }
.replay-metrics th:first-child, .replay-metrics td:first-child { text-align: left; }
.replay-pictures { display: flex; gap: 12px; flex-wrap: wrap; }
.replay-pictures figure { margin: 0; text-align: center; }
.replay-pictures img { width: 324px; height: 108px; object-fit: contain; background: #111; border-radius: 4px; }
.replay-pictures figcaption { font-size: 0.75em; color: #666; font-family: ui-monospace, monospace; max-width: 324px; }
.replay-plot { width: 100%; max-width: 1000px; }
"""


def build_replay_panel() -> gr.Accordion:
    return build_lazy_panel("Open-loop replay: the model on a recorded episode", "replay-accordion", "replay-panel",
                            PANEL_HTML, REPLAY_CSS, SCRIPT_ROUTE, "window.replayPanel.mount(element);")
