"""Plain HTTP routes beside the Gradio app: MJPEG camera feeds, foresight pictures and metrics,
keyboard teleop, e-stop, return-to-home and reconnect.

They bypass Gradio's event queue on purpose: feeds need full frame rate, and the e-stop must
work however busy the UI is.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import math
from collections.abc import Callable
from importlib import resources

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from pydantic import BaseModel

from runtime.control.commands import EStop, Reconnect, Release, ReturnHome, TakeOver, TeleopKeys
from runtime.control.session import Session
from runtime.control.teleop_keys import AXES
from ui.frame_encoder import SharedJpegCache

BOUNDARY = "frame"
FEED_WAIT_S = 1.0  # a feed re-checks that its browser is still there at least this often
MAX_KEYS = 16  # more simultaneous keys than any keyboard sends
MAX_CLIENT_ID = 64
CONTROL_ACTIONS = {"take": TakeOver, "release": Release}
# A foresight long-poll answers at once when a change lands, else after this long (the page asks
# again); short enough that a closed tab's request does not linger.
FORESIGHT_WAIT_S = 10.0
PLOTLY_JS = resources.files("plotly") / "package_data" / "plotly.min.js"  # plotly.js, served to the page once
PLOTLY_ROUTE = "/assets/plotly.min.js"  # the page head loads it (ui/console.py) for every chart
STATIC_MAX_AGE_S = 86400


class KeysBody(BaseModel):
    keys: list[str] = []
    toggle_gripper: bool = False
    axes: list[float] = []  # gamepad (dx, dy, dz, droll, dpitch, dyaw) in [-1, 1]
    client: str = ""  # the browser tab's id (ui/keyboard.js), so one tab holds control at a time


class ControlBody(BaseModel):
    action: str  # "take" or "release"
    client: str = ""


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

    foresight = session.foresight
    foresight_jpegs = SharedJpegCache()
    reckoning_jpegs = SharedJpegCache()
    foresight_changes = ThreadWake(foresight.wait_for_version)

    def foresight_jpeg(camera: str) -> tuple[bytes, int, int] | None:
        """(JPEG, foresight version, obs tick) of `camera`'s latest prediction, encoded once per version."""
        found = foresight.foresight_picture(camera)
        if found is None:
            return None
        version, obs_tick, picture = found
        return foresight_jpegs.get(camera, version, picture), version, obs_tick

    def reckoning_jpeg(camera: str):
        """(JPEG, reckoning) of `camera`'s latest judged prediction, encoded once per reckoning."""
        found = foresight.reckoning_picture(camera)
        if found is None:
            return None
        reckoning, picture = found
        return reckoning_jpegs.get(camera, reckoning.id, picture), reckoning

    @app.get("/foresight/{camera}.jpg")
    def foresight_frame(camera: str) -> Response:
        """The latest inference's predicted picture of `camera` (frame t + horizon)."""
        latest(camera)
        found = foresight_jpeg(camera)
        if found is None:
            raise HTTPException(404, foresight.state().message or f"the latest inference has no foresight of {camera!r}")
        jpeg, version, obs_tick = found
        return Response(jpeg, media_type="image/jpeg", headers={
            "Cache-Control": "no-store", "X-Foresight-Version": str(version), "X-Foresight-Tick": str(obs_tick),
        })

    @app.get("/foresight/{camera}/reckoning.jpg")
    def reckoning_frame(camera: str) -> Response:
        """prediction made at t | actual frame t+H | difference heat map, for `camera`'s latest reckoning."""
        latest(camera)
        found = reckoning_jpeg(camera)
        if found is None:
            raise HTTPException(404, f"no reckoning of {camera!r} yet: a prediction is judged {foresight.horizon} ticks after it is made")
        jpeg, reckoning = found
        return Response(jpeg, media_type="image/jpeg", headers={
            "Cache-Control": "no-store", "X-Reckoning-Id": str(reckoning.id),
            "X-Foresight-Tick": str(reckoning.obs_tick), "X-Target-Tick": str(reckoning.target_tick),
        })

    @app.get("/api/foresight")
    async def foresight_state(after: int | None = None, pictures: bool = False) -> dict:
        """What the foresight panel shows. With `after`, waits (up to FORESIGHT_WAIT_S) until the
        version passes it: the page learns of a new foresight the moment the inference lands.
        With `pictures`, the latest foresight and reckoning JPEGs come inside (data URLs): one
        round trip, and no extra connection (Chromium allows 6 per host, the feeds hold 3)."""
        if after is not None:
            await foresight_changes.wait_past(after, FORESIGHT_WAIT_S)
        state = foresight.state()
        answer = _foresight_json(state)
        if pictures:
            answer["pictures"] = {c: _data_url(found[0]) for c in state.cameras if (found := foresight_jpeg(c))}
            answer["reckoning_pictures"] = {c: _data_url(found[0]) for c in state.reckonings if (found := reckoning_jpeg(c))}
        return answer

    @app.get("/api/foresight/history")
    def foresight_history() -> dict:
        """Per camera, PSNR (and latent L2) of each judged prediction and of the copy baseline."""
        return {**foresight.history(), "latent_note": foresight.state().latent_note}

    @app.get(PLOTLY_ROUTE)
    def plotly_js() -> FileResponse:
        return FileResponse(PLOTLY_JS, media_type="text/javascript",
                            headers={"Cache-Control": f"public, max-age={STATIC_MAX_AGE_S}"})

    @app.get("/api/status")
    def status() -> dict:
        """Loop timing, mode, the latest inference's time and recording state as JSON (monitoring, benchmarks)."""
        snapshot = session.snapshot()
        if snapshot is None:
            raise HTTPException(503, "the control loop has not ticked yet")
        return {
            "tick": snapshot.tick,
            "mode": snapshot.mode.value,
            "success": snapshot.success,
            "loop": dataclasses.asdict(snapshot.loop),
            "inference_ms": snapshot.inference_ms,  # None before the first inference
            "recording": dataclasses.asdict(snapshot.recording) if snapshot.recording else None,
            "last_error": snapshot.last_error,
            "seams": dataclasses.asdict(snapshot.seams),
            "device_fault": snapshot.device_fault,
            "stale_cameras": list(snapshot.stale_cameras),
        }

    @app.post("/api/teleop")
    def teleop(body: KeysBody) -> dict:
        if len(body.keys) > MAX_KEYS:
            raise HTTPException(400, f"at most {MAX_KEYS} keys at once")
        if len(body.axes) > AXES or not all(math.isfinite(a) for a in body.axes):
            raise HTTPException(400, f"axes must be at most {AXES} finite numbers, got {body.axes}")
        if len(body.client) > MAX_CLIENT_ID:
            raise HTTPException(400, f"client id longer than {MAX_CLIENT_ID} characters")
        session.submit(TeleopKeys(frozenset(body.keys), body.toggle_gripper, tuple(body.axes), body.client))
        return {"ok": True}

    @app.post("/api/control")
    def control(body: ControlBody) -> dict:
        """Take over or release from a browser tab (the session refuses a second tab while one holds control)."""
        if body.action not in CONTROL_ACTIONS:
            raise HTTPException(400, f"action must be one of {sorted(CONTROL_ACTIONS)}, got {body.action!r}")
        if len(body.client) > MAX_CLIENT_ID:
            raise HTTPException(400, f"client id longer than {MAX_CLIENT_ID} characters")
        session.submit(CONTROL_ACTIONS[body.action](client=body.client))
        return {"ok": True}

    @app.post("/api/estop")
    def estop() -> dict:
        session.submit(EStop())
        return {"ok": True}

    @app.post("/api/home")
    def home() -> dict:
        """Move to the robot's home pose within the step clamp (any mode command interrupts it)."""
        session.submit(ReturnHome())
        return {"ok": True}

    @app.post("/api/reconnect")
    def reconnect() -> dict:
        """Connect again to the devices that stopped answering (the status bar names them)."""
        session.submit(Reconnect())
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


class ThreadWake:
    """Lets any number of requests await a change that a blocking `wait(after, timeout_s) -> version`
    reports, with one worker thread for all of them (as TickBroadcast does for ticks)."""

    def __init__(self, wait: Callable[[int, float], int]) -> None:
        self._wait = wait
        self._version = -1
        self._condition: asyncio.Condition | None = None
        self._watcher: asyncio.Task | None = None

    async def wait_past(self, after: int, timeout_s: float) -> int:
        if self._condition is None:
            self._condition = asyncio.Condition()
            self._version = self._wait(-1, 0.0)
            self._watcher = asyncio.create_task(self._watch())
        async with self._condition:
            try:
                await asyncio.wait_for(self._condition.wait_for(lambda: self._version > after), timeout_s)
            except TimeoutError:
                pass
            return self._version

    async def _watch(self) -> None:
        while True:
            version = await asyncio.to_thread(self._wait, self._version, FEED_WAIT_S)
            if version == self._version:
                continue
            async with self._condition:
                self._version = version
                self._condition.notify_all()


def _data_url(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def _foresight_json(state) -> dict:
    return {
        "version": state.version,
        "foresight_version": state.foresight_version,
        "available": state.available,
        "message": state.message,
        "horizon": state.horizon,
        "obs_tick": state.obs_tick,
        "done_time": state.done_time,
        "cameras": list(state.cameras),
        "reckonings": {
            camera: {**dataclasses.asdict(point), "id": state.reckoning_ids[camera]}
            for camera, point in state.reckonings.items()
        },
        "latent_note": state.latent_note,
        "problem": state.problem,
    }


def _frame_headers(snapshot) -> dict[str, str]:
    return {"X-Frame-Tick": str(snapshot.tick), "X-Frame-Time": f"{snapshot.wall_time:.6f}"}
