"""Training from the browser: pick a trainer (our model's fine-tune, or a stock LeRobot policy with
lerobot-train) and a dataset, start it in a process of its own beside the console; watch a progress
bar and the loss curve; load the fine-tuned checkpoint without a restart.

A lazy panel (ui/script_accordion.py): its script, ui/train.js (served by ui/train_routes.py), loads when
it is first opened. Static HTML here; the script fills it from the /api/train routes and polls
them while a training runs.
"""

from __future__ import annotations

import gradio as gr

from ui.script_accordion import script_accordion
from ui.train_routes import SCRIPT_ROUTE

PANEL_HTML = """
<div class='train' id='train'>
  <div class='train-form'>
    <label>Trainer <select id='train-kind'>
      <option value='finetune'>fine-tune our model (model.finetune)</option>
      <option value='lerobot'>stock LeRobot policy (lerobot-train)</option></select></label>
    <label>Dataset <select id='train-dataset'></select></label>
    <label id='train-base-label'>Start from <select id='train-base'></select></label>
    <label id='train-policy-label'>Policy <select id='train-policy'></select></label>
    <label>Steps <input id='train-steps' type='number' min='1' value='200'></label>
    <label>Batch <input id='train-batch' type='number' min='1' value='8'></label>
  </div>
  <div class='train-buttons'>
    <button id='train-start'>Start training</button>
    <button id='train-stop'>Stop</button>
    <button id='train-load'>Load into the console (the robot holds)</button>
    <button id='train-refresh' title='look for datasets and checkpoints again'>Rescan</button>
  </div>
  <div class='train-status'><progress id='train-progress' max='1' value='0'></progress>
    <span id='train-message'>Loading the datasets…</span></div>
  <pre class='train-error' id='train-error'></pre>
  <div class='train-result' id='train-result'></div>
  <div class='train-plot' id='train-loss-plot'></div>
</div>
"""

# Scoped to the panel by Gradio (css_template), so plain element selectors touch nothing else.
TRAIN_CSS = """
.train-form, .train-buttons { display: flex; flex-wrap: wrap; gap: 8px 16px; align-items: center; margin: 4px 0; }
label { font-size: 0.9em; }
select, input { border: 1px solid #bbb; border-radius: 4px; padding: 2px 4px; }
#train-dataset, #train-base { width: 300px; } #train-steps, #train-batch { width: 72px; }
button { padding: 2px 12px; border-radius: 4px; border: 1px solid #999; cursor: pointer; font-size: 0.9em; font-weight: normal; }
button:disabled { opacity: 0.5; cursor: default; }
progress { width: 320px; vertical-align: middle; }
.train-status, .train-result { font-family: ui-monospace, monospace; font-size: 0.85em; margin: 4px 0; }
.train-status.failed span, .train-error { color: #dc2626; }
.train-error { font-size: 0.8em; white-space: pre-wrap; margin: 4px 0; max-height: 220px; overflow: auto; }
.train-error:empty, .train-result:empty { display: none; }
.train-result { background: #f0fdf4; border: 1px solid #86efac; border-radius: 4px; padding: 4px 8px; }
.train-plot { width: 100%; max-width: 900px; }
"""


def build_train_panel() -> gr.Accordion:
    return script_accordion("Train: fine-tune our model or a LeRobot policy on a dataset", "train", PANEL_HTML, TRAIN_CSS,
                            SCRIPT_ROUTE, "window.trainPanel.mount")
