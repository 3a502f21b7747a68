"""Routes for the Train panel (ui/train_panel.py, ui/train.js).

    GET  /api/train/options          datasets under the dataset roots, checkpoints to start from, trainers
    POST /api/train/start            start a training (JSON body: TrainBody); 400 names the problem, 409 names the running one
    POST /api/train/stop             stop the running training (SIGTERM, then SIGKILL)
    GET  /api/train/status?since=N   phase, progress, the latest message or error, the losses from the N-th on
    POST /api/train/load             hot-swap the finished fine-tune's checkpoint into the console (the robot holds)
    GET  /train/train.js             the panel's script, loaded when the panel first opens

Viewers cannot POST (ui/access.py's middleware).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel

from runtime.control.checkpoint_loader import CheckpointLoader
from runtime.dataset_roots import dataset_label
from runtime.training.jobs import TrainingBusy, TrainingError, TrainingJobs
from runtime.training.trainers import KINDS, LEROBOT_POLICIES, TrainRequest
from ui.replay_routes import NO_STORE

TRAIN_SCRIPT = Path(__file__).with_name("train.js")
SCRIPT_ROUTE = "/train/train.js"
IDLE_MESSAGE = "No training yet: choose a trainer and a dataset, then Start training."


class TrainBody(BaseModel):
    kind: str
    dataset: str
    steps: int
    batch_size: int
    base: str = ""  # finetune: the checkpoint to start from
    policy: str = "act"  # lerobot: one of LEROBOT_POLICIES


def add_train_routes(app: FastAPI, jobs: TrainingJobs, loader: CheckpointLoader | None) -> None:
    """loader: the console's hot swap (None: results are only shown)."""

    @app.get("/api/train/options")
    def options() -> dict:
        datasets = [{"path": str(listing.path), "label": dataset_label(listing.path, jobs.config.dataset_roots),
                     "problem": listing.problem, "episodes": listing.summary.total_episodes if listing.summary else 0,
                     "version": listing.summary.version if listing.summary else ""}
                    for listing in jobs.datasets()]
        bases = [str(p) for p in (loader.checkpoints() if loader is not None else [])]
        default = str(jobs.config.default_base) if jobs.config.default_base is not None else (bases[0] if bases else "")
        if default and default not in bases:
            bases.insert(0, default)
        return {"kinds": list(KINDS), "lerobot_policies": list(LEROBOT_POLICIES), "datasets": datasets,
                "roots": [str(r) for r in jobs.config.dataset_roots], "bases": bases, "default_base": default,
                "can_load": loader is not None}

    @app.post("/api/train/start")
    def start(body: TrainBody) -> dict:
        try:
            request = TrainRequest(body.kind, Path(body.dataset), body.steps, body.batch_size,
                                   Path(body.base) if body.base else None, body.policy)
            job = jobs.start(request)
        except TrainingBusy as err:
            raise HTTPException(409, str(err)) from err
        except (TrainingError, ValueError) as err:
            raise HTTPException(400, str(err)) from err
        return {"ok": True, "folder": str(job.folder)}

    @app.post("/api/train/stop")
    def stop() -> dict:
        jobs.stop()
        return {"ok": True}

    @app.get("/api/train/status")
    def status(since: int = 0) -> JSONResponse:
        job = jobs.job
        if job is None:
            return JSONResponse({"phase": "idle", "message": IDLE_MESSAGE, "points": 0, "new_points": []}, headers=NO_STORE)
        answer = dataclasses.asdict(job.status()) | {"new_points": job.points(max(0, since))}
        if loader is not None:
            swap = loader.status()
            answer["swap"] = {"loading": swap.loading, "message": swap.message, "error": swap.error}
        return JSONResponse(answer, headers=NO_STORE)

    @app.post("/api/train/load")
    def load() -> dict:
        job = jobs.job
        result = job.status() if job is not None else None
        if result is None or result.phase != "done" or result.kind != "finetune":
            raise HTTPException(409, "no finished fine-tune to load: our model's checkpoints only")
        if loader is None:
            raise HTTPException(409, "this console loads no checkpoints (no hot swap)")
        try:
            loader.request(result.result)
        except ValueError as err:
            raise HTTPException(400, str(err)) from err
        return {"ok": True, "checkpoint": result.result}

    @app.get(SCRIPT_ROUTE)
    def script() -> FileResponse:
        return FileResponse(TRAIN_SCRIPT, media_type="text/javascript", headers=NO_STORE)
