"""The Rerun page (/rerun): the live Rerun viewer (gradio-rerun, fed from the logger's gRPC
server), how to open the same stream in Rerun's own viewer, and a button that saves the session
as an .rrd (operators only: it writes a file; logged with who pressed it).

A page of its own, not a panel of the console: in a browser without a GPU the viewer needs
software GL and a core or more, which would starve the console's camera feeds.
"""

from __future__ import annotations

import gradio as gr
from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from gradio_rerun import Rerun

from runtime.rerun.logger import RerunError, RerunLogger
from runtime.rerun.snapshot_writer import NO_GEOMETRY_NOTICE
from ui.access import Access
from ui.operator_gate import VIEWER_MESSAGE, may_operate

RERUN_PAGE_PATH = "/rerun"
VIEWER_HEIGHT_PX = 860
BYTES_PER_MB = 1e6


def build_rerun_page(logger: RerunLogger | None, off_reason: str, access: Access) -> gr.Blocks:
    with gr.Blocks(title="Foresight Console · Rerun") as page:
        gr.Markdown("## Plan in Rerun · [back to the console](/)")
        if logger is None:
            gr.Markdown(f"The Rerun view is off: {off_reason}", elem_id="rerun-off")
            return page
        notes = [f"Open the same live stream in Rerun's own viewer: `rerun {logger.url}` (on this machine)."]
        if not logger.has_geometry:
            notes.append(NO_GEOMETRY_NOTICE)
        gr.Markdown("\n\n".join(notes), elem_id="rerun-notes")
        with gr.Row():
            save = gr.Button("Save session as .rrd", elem_id="btn-rerun-save", scale=0, min_width=220)
            result = gr.Markdown(elem_id="rerun-save-result")
        Rerun(value=[logger.url], height=VIEWER_HEIGHT_PX, elem_id="rerun-viewer", show_label=False)

        def on_save(request: gr.Request) -> str:
            if not may_operate(access, request, "save the Rerun session as .rrd"):
                return f"Not saved: {VIEWER_MESSAGE}"
            try:
                path = logger.save()
            except RerunError as err:
                return f"Not saved: {err}"
            return f"Saved `{path}` ({path.stat().st_size / BYTES_PER_MB:.1f} MB): open it with `rerun {path}`."

        save.click(on_save, outputs=result)
    return page


def mount_rerun_page(app: FastAPI, logger: RerunLogger | None, off_reason: str, access: Access | None = None) -> None:
    """Mount before the console's own mount at "/", which would otherwise catch /rerun.
    access None: an open loopback console, where everyone operates."""
    access = access or Access(None)

    @app.get(RERUN_PAGE_PATH, include_in_schema=False)
    def without_slash() -> RedirectResponse:  # Gradio serves a mounted page at PATH/ only
        return RedirectResponse(f"{RERUN_PAGE_PATH}/")

    gr.mount_gradio_app(app, build_rerun_page(logger, off_reason, access), path=RERUN_PAGE_PATH, footer_links=[],
                        auth_dependency=access.auth_dependency)
