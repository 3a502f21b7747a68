"""Routes for the dataset curation panel (ui/curation_panel.py, ui/curation.js).

    GET  /api/curation/datasets                   datasets under the roots (and the session's), the running edit, the last result
    GET  /api/curation/episodes?dataset=&since=   the episode list; {"unchanged": true} while its version is `since`
    POST /api/curation/flag      {dataset, episode, flagged}     at once
    POST /api/curation/delete    {dataset, episodes}             the edits below run in the background:
    POST /api/curation/relabel   {dataset, episode, task}        202, then /api/curation/datasets' "last"
    POST /api/curation/export    {dataset, episodes, name}       says how it went; 409 while another edit runs
    POST /api/curation/merge     {dataset, other, name}
    POST /api/curation/undo      {dataset}
    GET  /curation/thumb.jpg?dataset=&episode=                   the episode's middle frame, small
    GET  /curation/frame.jpg?dataset=&episode=&camera=&i=        frame i of a camera, for the player
    GET  /curation/curation.js                                   the panel's script

POSTs under /api/ are for operators only (ui/access.py); a dataset outside the roots is a 400.
"""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel

from runtime.curation.service import CurationService, EditBusy
from ui.frame_encoder import encode_jpeg
from ui.replay_routes import NO_STORE, dataset_label

CURATION_SCRIPT = Path(__file__).with_name("curation.js")
SCRIPT_ROUTE = "/curation/curation.js"
THUMB_WIDTH = 96
CACHED = {"Cache-Control": "private, max-age=3600"}  # picture URLs carry the dataset's version


class FlagBody(BaseModel):
    dataset: str
    episode: int
    flagged: bool = True


class EpisodesBody(BaseModel):
    dataset: str
    episodes: list[int]
    name: str = ""  # export only


class RelabelBody(BaseModel):
    dataset: str
    episode: int
    task: str


class MergeBody(BaseModel):
    dataset: str
    other: str
    name: str


class DatasetBody(BaseModel):
    dataset: str


def add_curation_routes(app: FastAPI, curation: CurationService) -> None:
    roots = curation.config.roots

    @app.get("/api/curation/datasets")
    def datasets() -> JSONResponse:
        listed = [{"path": str(d.path), "label": dataset_label(d.path, roots), "episodes": d.episodes,
                   "problem": d.problem, "live": d.live, "backups": d.backups} for d in curation.datasets()]
        last = curation.last
        return JSONResponse({
            "datasets": listed, "roots": [str(r) for r in roots], "editing": curation.editing,
            "recording": curation.recording,
            "last": None if last is None else {"number": last.number, "ok": last.ok, "message": last.message,
                                               "seconds": round(last.seconds, 2)},
        }, headers=NO_STORE)

    @app.get("/api/curation/episodes")
    def episodes(dataset: str, since: str = "") -> JSONResponse:
        table = _answer(lambda: curation.table(dataset))
        if since and since == table.version:
            return JSONResponse({"unchanged": True}, headers=NO_STORE)
        rows = [{"index": e.index, "task": e.task, "frames": e.frames, "outcome": e.outcome,
                 "operator_share": None if e.intervention_frames < 0 else e.intervention_frames / max(e.frames, 1),
                 "flagged": e.index in table.flagged} for e in table.episodes]
        return JSONResponse({"dataset": str(table.root), "version": table.version, "fps": table.fps,
                             "cameras": list(table.cameras), "live": curation.is_live(table.root),
                             "episodes": rows}, headers=NO_STORE)

    @app.post("/api/curation/flag")
    def flag(body: FlagBody) -> dict:
        return {"message": _answer(lambda: curation.flag(body.dataset, body.episode, body.flagged))}

    def submit(edit) -> JSONResponse:
        try:
            number = curation.submit(edit)
        except EditBusy as err:
            raise HTTPException(409, str(err)) from err
        return JSONResponse({"number": number}, status_code=202)

    @app.post("/api/curation/delete")
    def delete(body: EpisodesBody) -> JSONResponse:
        return submit(functools.partial(curation.delete, body.dataset, body.episodes))

    @app.post("/api/curation/relabel")
    def relabel(body: RelabelBody) -> JSONResponse:
        return submit(functools.partial(curation.relabel, body.dataset, body.episode, body.task))

    @app.post("/api/curation/export")
    def export(body: EpisodesBody) -> JSONResponse:
        return submit(functools.partial(curation.export, body.dataset, body.episodes, body.name))

    @app.post("/api/curation/merge")
    def merge(body: MergeBody) -> JSONResponse:
        return submit(functools.partial(curation.merge, body.dataset, body.other, body.name))

    @app.post("/api/curation/undo")
    def undo(body: DatasetBody) -> JSONResponse:
        return submit(functools.partial(curation.undo, body.dataset))

    @app.get("/curation/thumb.jpg")
    def thumb(dataset: str, episode: int) -> Response:
        picture = _answer(lambda: curation.thumbnail(dataset, episode))  # (H, W, 3)
        height = max(1, round(picture.shape[0] * THUMB_WIDTH / picture.shape[1]))
        small = cv2.resize(picture, (THUMB_WIDTH, height), interpolation=cv2.INTER_AREA)
        return Response(encode_jpeg(small), media_type="image/jpeg", headers=CACHED)

    @app.get("/curation/frame.jpg")
    def frame(dataset: str, episode: int, camera: str, i: int) -> Response:
        picture = _answer(lambda: curation.frame(dataset, episode, camera, i))
        return Response(encode_jpeg(picture), media_type="image/jpeg", headers=CACHED)

    @app.get(SCRIPT_ROUTE)
    def script() -> FileResponse:
        return FileResponse(CURATION_SCRIPT, media_type="text/javascript", headers=NO_STORE)


def _answer(read):
    """`read()`, its ValueError (outside the roots, unreadable, unknown episode) as a 400."""
    try:
        return read()
    except ValueError as err:
        raise HTTPException(400, str(err)) from err
