"""Dataset curation on the console page: the episodes of a dataset (the one being recorded or any
under the dataset roots) with thumbnail, length, outcome, operator share and flag; a player; and
delete, flag, relabel, export a subset, merge two datasets, undo the last edit.

A closed accordion, like the replay panel: its script (ui/curation.js, from ui/curation_routes.py)
loads when it first opens and fills this static HTML from the /api/curation routes.
"""

from __future__ import annotations

import gradio as gr

from ui.curation_routes import SCRIPT_ROUTE
from ui.script_accordion import script_accordion

PANEL_HTML = """
<div class='curation' id='curation'>
  <div class='curation-bar'>
    <label>Dataset <select id='curation-dataset'></select></label>
    <button id='curation-rescan' title='look for datasets again'>Rescan</button>
    <button id='curation-undo' title='restore the version before the last edit (kept as a backup)'>Undo last edit</button>
  </div>
  <div class='curation-summary' id='curation-summary'>Loading the datasets…</div>
  <div class='curation-status' id='curation-status'></div>
  <div class='curation-body'>
    <div class='curation-list'><table id='curation-table'></table></div>
    <div class='curation-player' id='curation-player'>
      <div id='curation-player-title'>Choose an episode to play (▶).</div>
      <img id='curation-frame' alt=''>
      <div class='curation-player-bar'>
        <button id='curation-play'>▶ Play</button>
        <input id='curation-seek' type='range' min='0' max='0' value='0'>
        <span id='curation-position'></span>
        <select id='curation-camera'></select>
      </div>
    </div>
  </div>
  <div class='curation-actions'>
    <span>Selected: <b id='curation-selected'>none</b></span>
    <button id='curation-delete-selected'>Delete selected</button>
    <label>Export selected as <input id='curation-export-name' placeholder='new dataset name'></label>
    <button id='curation-export'>Export</button>
    <label>Merge with <select id='curation-merge-other'></select></label>
    <label>into <input id='curation-merge-name' placeholder='new dataset name'></label>
    <button id='curation-merge'>Merge</button>
  </div>
</div>
"""

CURATION_CSS = """
.curation-bar, .curation-actions { display: flex; flex-wrap: wrap; gap: 8px 14px; align-items: center; margin: 4px 0; }
.curation label { font-size: 0.9em; }
.curation select, .curation input { border: 1px solid #bbb; border-radius: 4px; padding: 2px 4px; }
#curation-dataset { width: 320px; } #curation-export-name, #curation-merge-name { width: 150px; }
.curation button { padding: 2px 10px; border-radius: 4px; border: 1px solid #999; cursor: pointer; font-size: 0.9em; font-weight: normal; }
.curation button:disabled { opacity: 0.5; cursor: default; }
.curation-summary, .curation-status { font-family: ui-monospace, monospace; font-size: 0.85em; margin: 4px 0; }
.curation-status.failed { color: #dc2626; } .curation-status.busy { color: #d97706; }
.curation-body { display: flex; gap: 16px; align-items: flex-start; }
.curation-list { max-height: 460px; overflow-y: auto; flex: 1 1 auto; }
#curation-table { border-collapse: collapse; font-size: 0.85em; }
#curation-table td, #curation-table th { border-bottom: 1px solid #e5e7eb; padding: 2px 6px; text-align: left; vertical-align: middle; }
#curation-table th { position: sticky; top: 0; background: #f9fafb; }
#curation-table img { width: 96px; border-radius: 3px; background: #111; display: block; }
#curation-table tr.flagged td { background: #fef3c7; }
#curation-table tr.playing td { outline: 1px solid #2563eb; }
.curation .outcome-success { color: #16a34a; } .curation .outcome-failure { color: #dc2626; } .curation .outcome-unknown { color: #6b7280; }
.curation-player { flex: 0 0 340px; }
#curation-frame { width: 320px; min-height: 120px; background: #111; border-radius: 4px; image-rendering: pixelated; }
.curation-player-bar { display: flex; gap: 6px; align-items: center; font-size: 0.85em; }
#curation-seek { width: 140px; }
#curation-player-title { font-size: 0.85em; margin-bottom: 4px; }
"""


def build_curation_panel() -> gr.Accordion:
    return script_accordion("Datasets: curate episodes", "curation", PANEL_HTML, CURATION_CSS, SCRIPT_ROUTE, "window.curationPanel.mount")
