"""A panel whose content and script load only when its closed accordion is first opened.

Gradio mounts an accordion's content on first open, and only then loads the script named in the
gr.HTML's `head`; `mount` (JavaScript, with `element` the panel's root) wires the static HTML to it.
A page that never opens the panel pays nothing for it.
"""

from __future__ import annotations

import gradio as gr


def build_lazy_panel(title: str, accordion_id: str, panel_id: str, html: str, css: str, script_route: str,
                     mount: str) -> gr.Accordion:
    with gr.Accordion(title, open=False, elem_id=accordion_id) as accordion:
        gr.HTML(html, css_template=css, head=f"<script src='{script_route}'></script>", js_on_load=mount, elem_id=panel_id)
    return accordion
