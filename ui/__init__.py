"""Gradio layout and wiring only: one file per panel; everything polls session snapshots."""
