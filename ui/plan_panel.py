"""The plan on the console page: the running 50-step chunk per action dimension with the executed
part marked, and the dry-run cards (plan + foresight for an instruction while the robot holds,
two side by side to compare instructions).

Static HTML only: ui/plan.js fills it from ui/plan_routes.py (the chart re-reads /api/plan a few
times a second while the page is visible; the cards follow a long-poll on /api/dry_run).
"""

from __future__ import annotations

import gradio as gr


def build_plan_panel() -> gr.HTML:
    return gr.HTML(
        "<div class='plan' id='plan'>"
        "<h3>Plan: the running chunk, planned (line) against executed (dots)</h3>"
        "<div class='plan-message' id='plan-message'>No chunk is running.</div>"
        "<div class='plan-plot' id='plan-plot'></div>"
        "<h3>Dry runs: what the policy would do, while the robot holds still</h3>"
        "<div class='plan-message' id='dry-run-message'>Type an instruction and press Dry run "
        "(the robot must be idle or paused). A second dry run appears beside the first to compare.</div>"
        "<div class='dry-runs' id='dry-runs'></div>"
        "</div>",
        elem_id="plan-panel",
    )


PLAN_CSS = """
.plan h3 { margin: 4px 0; }
.plan-message { font-family: ui-monospace, monospace; color: #2563eb; padding: 4px 0; }
.plan-message:empty { display: none; }
.plan-plot { width: 100%; max-width: 1000px; height: 320px; }
.dry-runs { display: flex; gap: 16px; flex-wrap: wrap; }
.dry-run { border: 1px solid #ddd; border-radius: 6px; padding: 6px; width: 520px; box-sizing: border-box; }
.dry-run.failed { border-color: #dc2626; }
.dry-run .title { font-family: ui-monospace, monospace; font-size: 0.9em; }
.dry-run .pictures { display: flex; gap: 4px; flex-wrap: wrap; }
.dry-run figure { margin: 0; text-align: center; }
.dry-run img { width: 120px; height: 120px; object-fit: contain; background: #111; border-radius: 4px; }
.dry-run figcaption { font-size: 0.75em; color: #666; font-family: ui-monospace, monospace; }
.dry-run .chart { width: 100%; height: 220px; }
.dry-run button { margin: 4px 4px 0 0; padding: 2px 10px; border-radius: 4px; border: 1px solid #999; cursor: pointer; }
"""
