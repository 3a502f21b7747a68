"""Routes for the plan views: the running chunk against what was executed, and dry runs.

    GET  /api/plan                          the running chunk, the one before it, the commands sent
    GET  /api/dry_run?after=V               dry-run previews (long-poll past version V)
    GET  /dry_run/{id}/{camera}/frame.jpg   the frame a preview was computed from
    GET  /dry_run/{id}/{camera}/plan.jpg    that frame with the plan drawn over it (robots with geometry)
    GET  /dry_run/{id}/{camera}/foresight.jpg  its predicted frame t+H (same route, kind in the path)
    POST /api/dry_run/{id}/run              run that preview's instruction (from a fresh inference)
    POST /api/dry_run/discard               drop every preview
"""

from __future__ import annotations

from fastapi import FastAPI, HTTPException
from fastapi.responses import Response

from runtime.control.commands import DiscardDryRuns, RunPolicy
from runtime.control.dry_run import Preview
from runtime.control.session import Session
from ui.frame_encoder import encode_jpeg
from ui.routes import ThreadWake

DRY_RUN_WAIT_S = 10.0  # a dry-run long-poll answers at once on a change, else after this long
PREVIEW_PICTURES = {"frame": "frames", "plan": "plan_frames", "foresight": "foresight"}  # URL kind -> Preview field


def add_plan_routes(app: FastAPI, session: Session) -> None:
    board = session.dry_runs
    changes = ThreadWake(board.wait_for_version)

    @app.get("/api/plan")
    def plan() -> dict:
        """What the plan chart draws: planned steps by tick, and the commands sent meanwhile."""
        snapshot = session.snapshot()
        if snapshot is None:
            raise HTTPException(503, "the control loop has not ticked yet")
        chunk, previous = snapshot.chunk, snapshot.previous_chunk
        answer = {"tick": snapshot.tick, "mode": snapshot.mode.value, "keys": session.action_keys,
                  "queue_depth": snapshot.queue_depth, "chunk": _chunk_json(chunk), "previous": _chunk_json(previous)}
        first = (previous or chunk).obs_tick + 1 if chunk is not None else snapshot.tick + 1
        ticks, sources, commands = session.sent_commands.since(first)
        answer["sent"] = {"ticks": ticks, "sources": sources, "commands": commands.tolist()}
        return answer

    @app.get("/api/dry_run")
    async def dry_runs(after: int | None = None) -> dict:
        if after is not None:
            await changes.wait_past(after, DRY_RUN_WAIT_S)
        version, pending, previews = board.state()
        return {"version": version, "pending": pending, "keys": session.action_keys,
                "cameras": session.camera_keys, "previews": [_preview_json(p) for p in previews]}

    def found(preview_id: int) -> Preview:
        preview = board.get(preview_id)
        if preview is None:
            raise HTTPException(404, f"no dry run {preview_id}: it was discarded or replaced")
        return preview

    @app.get("/dry_run/{preview_id}/{camera}/{kind}.jpg")
    def preview_picture(preview_id: int, camera: str, kind: str) -> Response:
        """kind "frame": the frame the preview was computed from; "plan": that frame with the planned
        end-effector path drawn; "foresight": its predicted frame t+H."""
        if kind not in PREVIEW_PICTURES:
            raise HTTPException(404, f"no picture kind {kind!r}; kinds: {sorted(PREVIEW_PICTURES)}")
        picture = getattr(found(preview_id), PREVIEW_PICTURES[kind]).get(camera)
        if picture is None:
            raise HTTPException(404, f"dry run {preview_id} has no {kind} of camera {camera!r}")
        return Response(encode_jpeg(picture), media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    @app.post("/api/dry_run/{preview_id}/run")
    def run_preview(preview_id: int) -> dict:
        preview = found(preview_id)
        if preview.actions is None:
            raise HTTPException(409, f"dry run {preview_id} failed ({preview.error}); nothing to run")
        session.submit(RunPolicy(preview.instruction))  # a fresh inference: the scene moved on since
        return {"ok": True, "instruction": preview.instruction}

    @app.post("/api/dry_run/discard")
    def discard() -> dict:
        session.submit(DiscardDryRuns())
        return {"ok": True}


def _chunk_json(chunk) -> dict | None:
    if chunk is None:
        return None
    return {"chunk_id": chunk.chunk_id, "obs_tick": chunk.obs_tick, "actions": chunk.actions.tolist()}


def _preview_json(preview: Preview) -> dict:
    return {
        "id": preview.preview_id,
        "instruction": preview.instruction,
        "obs_tick": preview.obs_tick,
        "latency_ms": preview.latency_ms,
        "error": preview.error,
        "actions": None if preview.actions is None else preview.actions.tolist(),
        "foresight_cameras": sorted(preview.foresight),
        "plan_cameras": sorted(preview.plan_frames),
    }
