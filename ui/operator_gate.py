"""The page's own controls submit through this gate: it refuses a viewer (ui/access.py roles),
writes the audit log, and hands the command to the session. Plain routes are checked by the
access middleware instead; the e-stop is open to anyone logged in."""

from __future__ import annotations

import gradio as gr

from runtime.control.commands import Command, EStop
from runtime.control.session import Session
from ui.access import Access

VIEWER_MESSAGE = "You are logged in as a viewer: viewers watch only. Ask an operator."


def may_operate(access: Access, request: gr.Request | None, action: str) -> bool:
    """May this browser's user do `action`? Says why not to them, logs it either way."""
    user = getattr(request, "username", None) or "local"
    address = request.client.host if request is not None and request.client else "?"
    if not access.may_operate(getattr(request, "username", None)):
        access.audit(user, address, "refused (viewer)", action)
        gr.Warning(VIEWER_MESSAGE)
        return False
    access.audit(user, address, "command", action)
    return True


class OperatorGate:
    def __init__(self, session: Session, access: Access) -> None:
        self.session, self.access = session, access

    def allowed(self, request: gr.Request | None, action: str) -> bool:
        return may_operate(self.access, request, action)

    def submit(self, request: gr.Request | None, command: Command) -> bool:
        if isinstance(command, EStop) or self.allowed(request, repr(command)):
            self.session.submit(command)
            return True
        return False

    def sender(self, command: Command):
        """A click handler submitting `command` (Gradio passes the request to annotated parameters)."""

        def send(request: gr.Request) -> None:
            self.submit(request, command)

        return send
