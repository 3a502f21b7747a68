"""Instruction box with history, and the run / pause / take over / release / e-stop / home / reconnect /
reset buttons."""

from __future__ import annotations

import collections
import threading

import gradio as gr

from runtime.control.commands import DryRun, Pause, Reconnect, ResetScene, ReturnHome, RunPolicy, validate_instruction
from runtime.control.session import Session
from runtime.control.teleop_keys import KEYMAP_HELP
from ui.operator_gate import OperatorGate

HISTORY_LENGTH = 20


class InstructionHistory:
    """Instructions sent in this console, newest first, shared by every browser."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: collections.deque[str] = collections.deque(maxlen=HISTORY_LENGTH)

    def add(self, text: str) -> None:
        with self._lock:
            if text in self._items:
                self._items.remove(text)
            self._items.appendleft(text)

    def items(self) -> list[str]:
        with self._lock:
            return list(self._items)


def build_control_panel(session: Session, history: InstructionHistory, gate: OperatorGate) -> dict[str, gr.components.Component]:
    with gr.Row():
        instruction = gr.Textbox(label="Instruction", placeholder="pick up the red block and put it in the bin",
                                 scale=4, elem_id="instruction")
        past = gr.Dropdown(label="History", choices=history.items(), scale=2, elem_id="history", allow_custom_value=False)
    with gr.Row():
        run = gr.Button("▶ Run policy", variant="primary", elem_id="btn-run")
        dry = gr.Button("◌ Dry run", elem_id="btn-dry-run")
        pause = gr.Button("❚❚ Pause", elem_id="btn-pause")
        take = gr.Button("☞ Take over", elem_id="btn-takeover")
        release = gr.Button("↩ Release", elem_id="btn-release")
        gr.Button("■ E-stop (Esc)", variant="stop", elem_id="btn-estop")  # posts /api/estop itself (ui/keyboard.js)
    with gr.Row():
        seed = gr.Textbox(label="Scene seed (empty: random)", value="", scale=1, elem_id="seed")
        reset = gr.Button("⟲ Reset scene", elem_id="btn-reset", scale=1)
        home = gr.Button("⌂ Home", elem_id="btn-home", scale=1)
        reconnect = gr.Button("⟳ Reconnect", elem_id="btn-reconnect", scale=1)
    gr.Markdown(f"**Keyboard teleop** (after Take over; click the page outside text boxes first): {KEYMAP_HELP}. "
                "Esc = e-stop.")

    def submitter(command: type[RunPolicy] | type[DryRun]):
        def on_click(text: str, request: gr.Request):
            try:
                cleaned = validate_instruction(text, session.config.max_instruction_chars)
            except ValueError as err:
                gr.Warning(str(err))
                return gr.update(), gr.update()
            if not gate.submit(request, command(cleaned)):
                return gr.update(), gr.update()
            history.add(cleaned)
            return cleaned, gr.update(choices=history.items(), value=None)

        return on_click

    run.click(submitter(RunPolicy), inputs=instruction, outputs=[instruction, past])
    instruction.submit(submitter(RunPolicy), inputs=instruction, outputs=[instruction, past])
    dry.click(submitter(DryRun), inputs=instruction, outputs=[instruction, past])
    past.select(lambda choice: choice, inputs=past, outputs=instruction)
    pause.click(gate.sender(Pause()))
    # Take over / Release go through /api/control from ui/keyboard.js, with the tab's id: the
    # session lets one tab hold control at a time (and that tab's keys and gamepad drive).
    # The E-stop button is not a Gradio event: ui/keyboard.js posts /api/estop, which no busy queue can delay.
    home.click(gate.sender(ReturnHome()))
    reconnect.click(gate.sender(Reconnect()))

    def on_reset(text: str, request: gr.Request) -> None:
        text = text.strip()
        if text and not text.isdigit():
            gr.Warning(f"The seed must be a whole number >= 0, got {text!r}.")
            return
        gate.submit(request, ResetScene(int(text) if text else None))

    reset.click(on_reset, inputs=seed)
    return {"instruction": instruction, "history": past}
