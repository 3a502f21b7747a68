"""Plain HTTP routes beside the Gradio app: MJPEG camera feeds, keyboard teleop and e-stop.

They bypass Gradio's event queue on purpose: feeds need full frame rate, and the e-stop must
work however busy the UI is.
"""

from __future__ import annotations

import asyncio
import dataclasses

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

from runtime.commands import EStop, TeleopKeys
from runtime.session import Session
from ui.frame_encoder import SharedJpegCache

BOUNDARY = "frame"
FEED_WAIT_S = 1.0  # a feed re-checks that its browser is still there at least this often
MAX_KEYS = 16  # more simultaneous keys than any keyboard sends


class KeysBody(BaseModel):
    keys: list[str] = []
    toggle_gripper: bool = False


def add_console_routes(app: FastAPI, session: Session) -> None:
    jpegs = SharedJpegCache()

    def latest(camera: str):
        if camera not in session.camera_keys:
            raise HTTPException(404, f"no camera {camera!r}; cameras: {session.camera_keys}")
        return session.snapshot()

    @app.get("/feeds/{camera}.jpg")
    def feed_frame(camera: str) -> Response:
        snapshot = latest(camera)
        if snapshot is None:
            raise HTTPException(503, "no frame yet")
        jpeg = jpegs.get(camera, snapshot.tick, snapshot.frames[camera])
        return Response(jpeg, media_type="image/jpeg", headers=_frame_headers(snapshot))

    ticks = TickBroadcast(session)

    @app.get("/feeds/{camera}.mjpg")
    async def feed_stream(camera: str, request: Request) -> StreamingResponse:
        latest(camera)

        async def parts():
            sent_tick = -1
            while not await request.is_disconnected():
                snapshot = await ticks.next_after(sent_tick)
                if snapshot is None:
                    continue
                sent_tick = snapshot.tick
                jpeg = jpegs.get(camera, snapshot.tick, snapshot.frames[camera])
                head = "".join(f"{k}: {v}\r\n" for k, v in _frame_headers(snapshot).items())
                yield (
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n{head}\r\n"
                ).encode() + jpeg + b"\r\n"

        return StreamingResponse(
            parts(),
            media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @app.get("/api/status")
    def status() -> dict:
        """Loop timing, mode and recording state as JSON (monitoring, benchmarks)."""
        snapshot = session.snapshot()
        if snapshot is None:
            raise HTTPException(503, "the control loop has not ticked yet")
        return {
            "tick": snapshot.tick,
            "mode": snapshot.mode.value,
            "success": snapshot.success,
            "loop": dataclasses.asdict(snapshot.loop),
            "recording": dataclasses.asdict(snapshot.recording) if snapshot.recording else None,
            "last_error": snapshot.last_error,
            "seams": dataclasses.asdict(snapshot.seams),
        }

    @app.post("/api/teleop")
    def teleop(body: KeysBody) -> dict:
        if len(body.keys) > MAX_KEYS:
            raise HTTPException(400, f"at most {MAX_KEYS} keys at once")
        session.submit(TeleopKeys(frozenset(body.keys), body.toggle_gripper))
        return {"ok": True}

    @app.post("/api/estop")
    def estop() -> dict:
        session.submit(EStop())
        return {"ok": True}


class TickBroadcast:
    """Wakes every feed once per control tick.

    One worker thread waits on the session for the next snapshot and notifies the event loop,
    instead of each feed polling: polling costs GIL hand-offs the control thread pays for.
    """

    def __init__(self, session: Session) -> None:
        self._session = session
        self._condition: asyncio.Condition | None = None
        self._watcher: asyncio.Task | None = None

    async def next_after(self, tick: int):
        """The first snapshot newer than `tick`, or None after FEED_WAIT_S (to re-check the client)."""
        if self._condition is None:
            self._condition = asyncio.Condition()
            self._watcher = asyncio.create_task(self._watch())
        snapshot = self._session.snapshot()
        if snapshot is not None and snapshot.tick > tick:
            return snapshot
        async with self._condition:
            try:
                await asyncio.wait_for(self._condition.wait(), FEED_WAIT_S)
            except TimeoutError:
                return None
        return self._session.snapshot()

    async def _watch(self) -> None:
        tick = -1
        while True:
            snapshot = await asyncio.to_thread(self._session.wait_for_tick, tick, FEED_WAIT_S)
            if snapshot is None or snapshot.tick == tick:
                continue
            tick = snapshot.tick
            async with self._condition:
                self._condition.notify_all()


def _frame_headers(snapshot) -> dict[str, str]:
    return {"X-Frame-Tick": str(snapshot.tick), "X-Frame-Time": f"{snapshot.wall_time:.6f}"}
