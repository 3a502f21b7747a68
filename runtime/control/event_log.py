"""What the session tells the operator: the recent events, the last error and a hint.

Written by the control thread (and the parts of the session it drives); snapshots copy it.
"""

from __future__ import annotations

import collections
import time

EVENT_LOG_LENGTH = 50


class EventLog:
    def __init__(self, length: int = EVENT_LOG_LENGTH) -> None:
        self._events: collections.deque[str] = collections.deque(maxlen=length)
        self.last_error = ""  # the latest error, until something clears it
        self.hint = ""  # what the operator could do now ("" when nothing)

    def note(self, message: str, error: bool = False) -> None:
        self._events.append(f"{time.strftime('%H:%M:%S')} {message}")
        if error:
            self.last_error = message

    def events(self) -> tuple[str, ...]:
        """Oldest first."""
        return tuple(self._events)
