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
FEED_POLL_S = 0.005  # how often a feed checks for a new frame: adds at most this much lag
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

    @app.get("/feeds/{camera}.mjpg")
    async def feed_stream(camera: str, request: Request) -> StreamingResponse:
        latest(camera)

        async def parts():
            sent_tick = -1
            while not await request.is_disconnected():
                snapshot = session.snapshot()
                if snapshot is None or snapshot.tick == sent_tick:
                    await asyncio.sleep(FEED_POLL_S)
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


def _frame_headers(snapshot) -> dict[str, str]:
    return {"X-Frame-Tick": str(snapshot.tick), "X-Frame-Time": f"{snapshot.wall_time:.6f}"}
