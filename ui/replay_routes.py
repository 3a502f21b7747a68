"""Routes for the open-loop replay panel (ui/replay_panel.py, ui/replay.js).

    GET  /api/replay/datasets            datasets found in the replay roots, and what the policy reads
    POST /api/replay/start               start a replay (JSON body: ReplayBody); 400 names the problem, 409 if one runs
    POST /api/replay/stop                cancel the running replay (the figures so far stay)
    GET  /api/replay/status              phase, progress and the episode's figures so far
    GET  /api/replay/series              per-step recorded and predicted actions, foresight PSNR
    GET  /api/replay/result.json         everything, as a JSON file to download
    GET  /replay/{camera}/reckoning.jpg  latest judged foresight: prediction | recorded t+H | difference
    GET  /replay/replay.js               the panel's script, loaded when the panel first opens
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel

from robot_io.datasets.reader import DatasetReadError
from runtime.control.foresight_reckoning import reckoning_picture
from runtime.dataset_roots import dataset_label
from runtime.replay.open_loop import DEFAULT_INFER_EVERY, ReplayConfig, ReplayError, format_camera_mapping, parse_camera_mapping
from runtime.replay.service import ReplayBusy, ReplayService
from ui.frame_encoder import SharedJpegCache

REPLAY_SCRIPT = Path(__file__).with_name("replay.js")
SCRIPT_ROUTE = "/replay/replay.js"
IDLE_MESSAGE = "No replay yet: choose a dataset and an episode, then Start replay."
NO_STORE = {"Cache-Control": "no-store"}


class ReplayBody(BaseModel):
    dataset: str
    episode: int = 0
    cameras: str = ""  # "policy_camera=dataset_camera,..."; "": the same names
    infer_every: int = DEFAULT_INFER_EVERY
    max_steps: int | None = None
    instruction: str = ""


def add_replay_routes(app: FastAPI, replay: ReplayService) -> None:
    layout = replay.layout
    jpegs = SharedJpegCache()

    @app.get("/api/replay/datasets")
    def datasets() -> dict:
        listed = []
        for listing in replay.datasets():
            entry = {"path": str(listing.path), "label": dataset_label(listing.path, replay.config.roots), "problem": listing.problem}
            if listing.summary is not None:
                s = listing.summary
                entry.update(version=s.version, fps=s.fps, episodes=s.total_episodes, cameras=list(s.cameras),
                             robot_type=s.robot_type)
            listed.append(entry)
        return {
            "roots": [str(r) for r in replay.config.roots],
            "policy": {"cameras": list(layout.camera_keys), "state_keys": list(layout.state_keys),
                       "action_keys": list(layout.action_keys), "fps": layout.fps},
            "default_cameras": format_camera_mapping(replay.config.default_cameras),
            "datasets": listed,
        }

    @app.post("/api/replay/start")
    def start(body: ReplayBody) -> dict:
        try:
            config = ReplayConfig(Path(body.dataset), body.episode, parse_camera_mapping(body.cameras),
                                  body.infer_every, body.max_steps, body.instruction)
            replay.start(config)
        except ReplayBusy as err:
            raise HTTPException(409, str(err)) from err
        except (ReplayError, DatasetReadError) as err:
            raise HTTPException(400, str(err)) from err
        return {"ok": True}

    @app.post("/api/replay/stop")
    def stop() -> dict:
        replay.stop()
        return {"ok": True}

    @app.get("/api/replay/status")
    def status() -> JSONResponse:
        job = replay.job
        if job is None:
            return JSONResponse({"phase": "idle", "message": IDLE_MESSAGE, "version": 0}, headers=NO_STORE)
        return JSONResponse(dataclasses.asdict(job.status()), headers=NO_STORE)

    @app.get("/api/replay/series")
    def series() -> JSONResponse:
        job = _job(replay)
        return JSONResponse(job.series(), headers=NO_STORE)

    @app.get("/api/replay/result.json")
    def result() -> JSONResponse:
        job = _job(replay)
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"replay_{job.config.dataset.name}_episode{job.config.episode}.json")
        return JSONResponse(job.result(), headers={**NO_STORE, "Content-Disposition": f'attachment; filename="{name}"'})

    @app.get("/replay/{camera}/reckoning.jpg")
    def reckoning(camera: str) -> Response:
        if camera not in layout.camera_keys:
            raise HTTPException(404, f"no camera {camera!r}; the policy's cameras: {list(layout.camera_keys)}")
        found = _job(replay).reckoning(camera)
        if found is None:
            raise HTTPException(404, f"no judged foresight of {camera!r} yet")
        jpeg = jpegs.get(camera, found.id, reckoning_picture(found.prediction, found.actual))  # (h, 3w + gaps, 3)
        return Response(jpeg, media_type="image/jpeg", headers={**NO_STORE, "X-Reckoning-Id": str(found.id),
                                                                "X-Foresight-Step": str(found.obs_tick)})

    @app.get(SCRIPT_ROUTE)
    def script() -> FileResponse:
        return FileResponse(REPLAY_SCRIPT, media_type="text/javascript", headers=NO_STORE)


def _job(replay: ReplayService):
    job = replay.job
    if job is None:
        raise HTTPException(404, IDLE_MESSAGE)
    return job

