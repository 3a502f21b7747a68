"""A closed accordion holding static HTML that a script fills in: Gradio mounts the content when
the accordion first opens, and only then loads the script (through gr.HTML's `head`), so a page
that never opens it pays nothing. Used by the replay, curation and train panels."""

from __future__ import annotations

import gradio as gr


def script_accordion(title: str, name: str, html: str, css: str, script_route: str, mount: str) -> gr.Accordion:
    """The accordion `<name>-accordion` holding `<name>-panel`; `mount`: the script's function
    that takes the panel's element (its js_on_load)."""
    with gr.Accordion(title, open=False, elem_id=f"{name}-accordion") as accordion:
        gr.HTML(html, css_template=css, head=f"<script src='{script_route}'></script>",
                js_on_load=f"{mount}(element);", elem_id=f"{name}-panel")
    return accordion
