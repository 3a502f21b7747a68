"""What one session snapshot becomes in Rerun: the entity paths of the scheme documented at the
top of runtime/rerun/logger.py, the blueprint (the viewer's layout, sent once), and `SnapshotWriter`,
which logs each snapshot and remembers what it already logged (a plan once per chunk)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import rerun as rr
import rerun.blueprint as rrb

from robot_io.datasets.schema import SOURCE_HOLD, SOURCE_OPERATOR
from robot_io.devices.robot import CameraModel, SceneGeometry
from robot_io.chunks.schedule import Chunk
from runtime.control.commands import Mode
from runtime.control.snapshot import Snapshot

STEP_TIMELINE = "control_step"
WALL_TIMELINE = "wall_time"
PLOT_WINDOW_STEPS = 300  # time series show the last 20 s at 15 Hz...
PLOT_WINDOW_S = 20.0  # ...on either timeline

PLAN_CURRENT_RGBA = (255, 140, 0, 255)
PLAN_PREVIOUS_RGBA = (80, 140, 255, 110)
PLAN_RADIUS_M = 0.004
PLAN_PREVIOUS_RADIUS_M = 0.0025
PLAN_LINE_PX = 2.0
LINK_RADIUS_M = 0.02
LINK_RGBA = (200, 200, 210, 255)
END_EFFECTOR_RADIUS_M = 0.012
END_EFFECTOR_RGBA = (255, 0, 200, 255)
CAMERA_PLANE_M = 0.08  # how far from each camera its frustum is drawn in 3D
SERIES_RGBA = {"planned": (255, 140, 0, 255), "sent": (60, 200, 90, 255), "measured": (170, 170, 170, 255)}
SEAM_RGBA = {"raw": (230, 60, 60, 255), "blended": (60, 200, 90, 255)}
TAKEOVER_RGBA = (230, 30, 30, 255)
TAKEOVER_MARKER_SIZE = 6.0
SEAM_MARKER_SIZE = 3.0
NO_GEOMETRY_NOTICE = (
    "This robot does not describe its geometry (`robot_io.devices.robot.SceneGeometry`): there is no 3D "
    "scene, no planned end-effector path and no projection of it onto the cameras. The time series "
    "and the camera images are live."
)


# --- entity paths (see runtime/rerun/logger.py) ---------------------------------------------------
SURPRISE_PATH = "timeseries/surprises"  # auto-hold events (runtime/control/surprise.py): the offending value
GAUGE_PATH = "timeseries/surprise_gauge"  # the calibrated score of each judged prediction (with a calibration)


def joint_path(key: str) -> str:
    return f"timeseries/joints/{rr.escape_entity_path_part(key)}"


def camera_root(camera: str) -> str:
    return f"cameras/{rr.escape_entity_path_part(camera)}"


def image_path(camera: str) -> str:
    return f"{camera_root(camera)}/image"


def image_plan_path(camera: str, which: str) -> str:
    return f"{camera_root(camera)}/plan/{which}"


def world_camera_path(camera: str) -> str:
    return f"world/{camera_root(camera)}"


def build_blueprint(image_sizes: Mapping[str, tuple[int, int]], joint_keys: Sequence[str],
                    has_geometry: bool) -> rrb.Blueprint:
    """3D scene (or the notice) over the cameras on the left; per-joint plots, seams, chunk age
    and events on the right. Plots scroll with the time cursor; camera views frame their image
    (a projected path may run far outside it). `image_sizes`: camera -> (height, width)."""
    window = [
        rrb.VisibleTimeRange(STEP_TIMELINE, start=rrb.TimeRangeBoundary.cursor_relative(seq=-PLOT_WINDOW_STEPS),
                             end=rrb.TimeRangeBoundary.cursor_relative()),
        rrb.VisibleTimeRange(WALL_TIMELINE, start=rrb.TimeRangeBoundary.cursor_relative(seconds=-PLOT_WINDOW_S),
                             end=rrb.TimeRangeBoundary.cursor_relative()),
    ]
    scene = (rrb.Spatial3DView(name="Scene and plan", origin="world") if has_geometry
             else rrb.TextDocumentView(name="No 3D scene", origin="notice"))
    camera_views = [
        rrb.Spatial2DView(name=camera, origin=camera_root(camera),
                          visual_bounds=rrb.VisualBounds2D(x_range=[0, width], y_range=[0, height]))
        for camera, (height, width) in image_sizes.items()
    ]
    joint_views = [  # one legend is enough: the colours mean the same in every joint's plot
        rrb.TimeSeriesView(name=key, origin=joint_path(key), time_ranges=window, plot_legend=rrb.PlotLegend(visible=i == 0))
        for i, key in enumerate(joint_keys)
    ]
    return rrb.Blueprint(
        rrb.Horizontal(
            rrb.Vertical(scene, rrb.Horizontal(*camera_views), row_shares=[3, 2]),
            rrb.Vertical(
                rrb.Grid(*joint_views),
                rrb.Horizontal(
                    rrb.TimeSeriesView(name="Jump at chunk switch", origin="timeseries/seams", time_ranges=window),
                    rrb.TimeSeriesView(name="Chunk age, queue depth, inference delay", origin="timeseries/chunk", time_ranges=window),
                    rrb.TextLogView(name="Events", origin="events"),
                ),
                row_shares=[3, 1],
            ),
            column_shares=[3, 2],
        ),
        rrb.BlueprintPanel(state="collapsed"),
        rrb.SelectionPanel(state="collapsed"),
    )


class SnapshotWriter:
    """Turns snapshots into log calls on one recording (one thread at a time). It remembers what
    it already logged, so a plan is computed and logged once per chunk, not once per tick."""

    def __init__(self, recording: rr.RecordingStream, image_sizes: Mapping[str, tuple[int, int]],
                 action_keys: Sequence[str], state_keys: Sequence[str], geometry: SceneGeometry | None, fps: float,
                 image_every_ticks: int) -> None:
        """`image_sizes`: camera -> (height, width) of its frames."""
        self._rec = recording
        self._image_sizes = dict(image_sizes)
        self._cameras = list(image_sizes)
        self._action_keys = list(action_keys)
        self._measured_keys = [k for k in action_keys if k in state_keys]
        self._geometry = geometry
        self._period_s = 1.0 / fps
        self._image_every = image_every_ticks
        self.images_enabled = True
        self._plans: dict[int, np.ndarray] = {}  # chunk_id -> (steps, 3) end-effector path, current and previous only
        self._logged_plan_ids: tuple[int | None, int | None] = (None, None)
        self._last_seam_tick = -1
        self._last_mode: Mode | None = None
        self._last_active_source: str | None = None  # the last source that was not "hold"
        self._last_surprise = None  # the auto-hold event logged last
        self._last_gauge = None  # the calibrated score logged last
        self._last_image_tick: int | None = None
        self._drawn_2d: set[str] = set()  # projected-plan entities that show a line now

    def log_setup(self) -> None:
        """Static parts: the blueprint, series styles, fixed scene objects, camera intrinsics."""
        rec = self._rec
        rec.send_blueprint(build_blueprint(self._image_sizes, self._action_keys, self._geometry is not None))
        for key in self._action_keys:
            for series, rgba in SERIES_RGBA.items():
                rec.log(f"{joint_path(key)}/{series}", rr.SeriesLines(colors=[rgba], names=[series]), static=True)
            rec.log(f"{joint_path(key)}/takeover", rr.SeriesPoints(
                colors=[TAKEOVER_RGBA], names=["operator took over"], markers=["diamond"],
                marker_sizes=[TAKEOVER_MARKER_SIZE]), static=True)
        for series, rgba in SEAM_RGBA.items():
            rec.log(f"timeseries/seams/{series}", rr.SeriesPoints(colors=[rgba], names=[f"{series} jump"],
                                                                  markers=["circle"], marker_sizes=[SEAM_MARKER_SIZE]), static=True)
        rec.log(SURPRISE_PATH, rr.SeriesPoints(colors=[TAKEOVER_RGBA], names=["auto-hold (surprise value)"],
                                               markers=["cross"], marker_sizes=[TAKEOVER_MARKER_SIZE]), static=True)
        rec.log(f"{GAUGE_PATH}/p_value", rr.SeriesLines(names=["surprise p-value (small: surprising)"]), static=True)
        rec.log(f"{GAUGE_PATH}/false_alarm", rr.SeriesLines(colors=[TAKEOVER_RGBA], names=["alarm at or below"]), static=True)
        rec.log("timeseries/chunk/age", rr.SeriesLines(names=["chunk age (ticks)"]), static=True)
        rec.log("timeseries/chunk/queue_depth", rr.SeriesLines(names=["queue depth (steps)"]), static=True)
        rec.log("timeseries/chunk/inference_delay", rr.SeriesLines(names=["inference delay (ticks)"]), static=True)
        rec.log("timeseries/chunk/execute_horizon", rr.SeriesLines(names=["execute horizon (steps)"]), static=True)
        if self._geometry is None:
            rec.log("notice", rr.TextDocument(NO_GEOMETRY_NOTICE, media_type=rr.MediaType.MARKDOWN), static=True)
            return
        rec.log("world", rr.ViewCoordinates.RIGHT_HAND_Z_UP, static=True)
        fixed = [o for o in self._geometry.scene_objects() if o.fixed]
        if fixed:
            rec.log("world/scene/fixed", _boxes(fixed), static=True)
        for camera, model in self._geometry.camera_models({}).items():
            rec.log(world_camera_path(camera), _pinhole(model), static=True)

    def log(self, snapshot: Snapshot) -> None:
        rec = self._rec
        rec.set_time(STEP_TIMELINE, sequence=snapshot.tick)
        rec.set_time(WALL_TIMELINE, timestamp=snapshot.wall_time)
        images_due = self.images_enabled and (
            self._last_image_tick is None or snapshot.tick - self._last_image_tick >= self._image_every)
        plans = self._plan_paths(snapshot)
        if self._geometry is not None:
            self._log_world(snapshot, plans)
        self._log_joints(snapshot)
        self._log_chunk(snapshot)
        self._log_seams(snapshot)
        self._log_events(snapshot)
        if images_due:
            self._last_image_tick = snapshot.tick
            self._log_cameras(snapshot, plans)

    def note(self, text: str, level: str = rr.TextLogLevel.INFO) -> None:
        self._rec.log("events", rr.TextLog(text, level=level))

    # --- per snapshot ----------------------------------------------------------------------
    def _plan_paths(self, snapshot: Snapshot) -> dict[str, np.ndarray | None]:
        """"current" / "previous" -> (steps, 3) end-effector path, None when there is none."""
        if self._geometry is None:
            return {"current": None, "previous": None}
        chunks = {"current": snapshot.chunk, "previous": snapshot.previous_chunk}
        paths = {which: self._plan_path(chunk) for which, chunk in chunks.items()}
        keep = {chunk.chunk_id for chunk in chunks.values() if chunk is not None}
        self._plans = {cid: path for cid, path in self._plans.items() if cid in keep}
        return paths

    def _plan_path(self, chunk: Chunk | None) -> np.ndarray | None:
        if chunk is None:
            return None
        if chunk.chunk_id not in self._plans:
            steps = [dict(zip(self._action_keys, map(float, row))) for row in chunk.actions]  # (steps, A) -> dicts
            self._plans[chunk.chunk_id] = self._geometry.end_effector_path(steps)  # (steps, 3)
        return self._plans[chunk.chunk_id]

    def _log_world(self, snapshot: Snapshot, plans: Mapping[str, np.ndarray | None]) -> None:
        rec, geometry = self._rec, self._geometry
        links = geometry.link_positions(snapshot.state)  # (links, 3)
        rec.log("world/robot/links", rr.LineStrips3D([links], radii=LINK_RADIUS_M, colors=[LINK_RGBA]))
        rec.log("world/robot/end_effector", rr.Points3D(links[-1:], radii=END_EFFECTOR_RADIUS_M, colors=[END_EFFECTOR_RGBA]))
        moving = [o for o in geometry.scene_objects() if not o.fixed]
        if moving:
            rec.log("world/scene/objects", _boxes(moving))
        ids = (snapshot.chunk.chunk_id if snapshot.chunk else None,
               snapshot.previous_chunk.chunk_id if snapshot.previous_chunk else None)
        if ids != self._logged_plan_ids:  # a plan changes only when a chunk does
            self._logged_plan_ids = ids
            for which, rgba, radius in (("current", PLAN_CURRENT_RGBA, PLAN_RADIUS_M),
                                        ("previous", PLAN_PREVIOUS_RGBA, PLAN_PREVIOUS_RADIUS_M)):
                path = plans[which]
                if path is None:
                    rec.log(f"world/plan/{which}", rr.Clear(recursive=False))
                else:
                    rec.log(f"world/plan/{which}", rr.LineStrips3D(_finite_strips(path), radii=radius, colors=[rgba]))

    def _log_joints(self, snapshot: Snapshot) -> None:
        rec = self._rec
        planned = _planned_row(snapshot)  # (A,) or None
        for i, key in enumerate(self._action_keys):
            path = joint_path(key)
            if planned is not None and np.isfinite(planned[i]):
                rec.log(f"{path}/planned", rr.Scalars(float(planned[i])))
            rec.log(f"{path}/sent", rr.Scalars(snapshot.action[key]))
        for key in self._measured_keys:
            rec.log(f"{joint_path(key)}/measured", rr.Scalars(snapshot.state[key]))

    def _log_chunk(self, snapshot: Snapshot) -> None:
        if snapshot.chunk is None:
            return
        self._rec.log("timeseries/chunk/age", rr.Scalars(snapshot.tick - snapshot.chunk.obs_tick))
        self._rec.log("timeseries/chunk/queue_depth", rr.Scalars(snapshot.queue_depth))
        if snapshot.inference_delay_ticks is not None:
            self._rec.log("timeseries/chunk/inference_delay", rr.Scalars(snapshot.inference_delay_ticks))
            self._rec.log("timeseries/chunk/execute_horizon", rr.Scalars(snapshot.execute_horizon))

    def _log_seams(self, snapshot: Snapshot) -> None:
        """Every switch since the last logged one, on its own tick (the logger may have skipped it)."""
        fresh = [seam for seam in snapshot.seams.history if seam.tick > self._last_seam_tick]
        if not fresh:
            return
        rec = self._rec
        for seam in fresh:
            rec.set_time(STEP_TIMELINE, sequence=seam.tick)
            rec.set_time(WALL_TIMELINE, timestamp=snapshot.wall_time - (snapshot.tick - seam.tick) * self._period_s)
            rec.log("timeseries/seams/raw", rr.Scalars(seam.raw))
            rec.log("timeseries/seams/blended", rr.Scalars(seam.blended))
        self._last_seam_tick = fresh[-1].tick
        rec.set_time(STEP_TIMELINE, sequence=snapshot.tick)
        rec.set_time(WALL_TIMELINE, timestamp=snapshot.wall_time)

    def _log_events(self, snapshot: Snapshot) -> None:
        if snapshot.mode is not self._last_mode:
            self._last_mode = snapshot.mode
            self.note(f"mode: {snapshot.mode.value}")
        surprise = snapshot.last_surprise
        if surprise is not None and surprise is not self._last_surprise:
            self._last_surprise = surprise
            # On the tick it was detected, even when the logger skipped to a later snapshot.
            self._rec.set_time(STEP_TIMELINE, sequence=surprise.tick)
            self._rec.log(SURPRISE_PATH, rr.Scalars(surprise.value))
            self.note(f"auto-hold: {surprise.describe()}", level=rr.TextLogLevel.WARN)
            self._rec.set_time(STEP_TIMELINE, sequence=snapshot.tick)
        gauge = snapshot.surprise_gauge
        if gauge is not None and gauge is not self._last_gauge:
            self._last_gauge = gauge
            self._rec.set_time(STEP_TIMELINE, sequence=gauge.tick)  # the tick it was judged
            self._rec.log(f"{GAUGE_PATH}/p_value", rr.Scalars(gauge.p_value))
            self._rec.log(f"{GAUGE_PATH}/false_alarm", rr.Scalars(gauge.false_alarm))
            self._rec.set_time(STEP_TIMELINE, sequence=snapshot.tick)
        source = snapshot.action_source
        if source == SOURCE_HOLD:
            return  # holding between key presses does not end a take-over
        if source == SOURCE_OPERATOR and self._last_active_source != SOURCE_OPERATOR:
            self.note("operator took over", level=rr.TextLogLevel.WARN)
            for key in self._action_keys:
                self._rec.log(f"{joint_path(key)}/takeover", rr.Scalars(snapshot.action[key]))
        self._last_active_source = source

    def _log_cameras(self, snapshot: Snapshot, plans: Mapping[str, np.ndarray | None]) -> None:
        rec = self._rec
        models = self._geometry.camera_models(snapshot.state) if self._geometry is not None else {}
        for camera in self._cameras:
            frame = snapshot.frames.get(camera)
            if frame is not None:
                rec.log(image_path(camera), rr.Image(frame))  # raw: compressed images never showed in the web viewer
            model = models.get(camera)
            if model is None:
                continue
            rec.log(world_camera_path(camera), rr.Transform3D(translation=model.position, mat3x3=model.rotation))
            for which, rgba in (("current", PLAN_CURRENT_RGBA), ("previous", PLAN_PREVIOUS_RGBA)):
                entity, path = image_plan_path(camera, which), plans[which]
                if path is None:
                    if entity in self._drawn_2d:
                        rec.log(entity, rr.Clear(recursive=False))
                        self._drawn_2d.discard(entity)
                    continue
                pixels, in_front = model.project(path)  # (steps, 2), (steps,)
                rec.log(entity, rr.LineStrips2D(_finite_strips(pixels, in_front),
                                                radii=rr.Radius.ui_points(PLAN_LINE_PX), colors=[rgba]))
                self._drawn_2d.add(entity)


def _planned_row(snapshot: Snapshot) -> np.ndarray | None:
    """The running chunk's raw action (A,) for this tick, None when there is none."""
    chunk, step = snapshot.chunk, snapshot.chunk_step
    if chunk is None or step is None or not 0 <= step < len(chunk.actions):
        return None
    return chunk.actions[step]


def _finite_strips(points: np.ndarray, keep: np.ndarray | None = None) -> list[np.ndarray]:
    """`points` (N, D) cut into runs of consecutive usable rows (finite, and `keep` when given)."""
    usable = np.isfinite(points).all(axis=1)
    if keep is not None:
        usable &= keep
    strips, start = [], None
    for i, ok in enumerate([*usable, False]):
        if ok and start is None:
            start = i
        elif not ok and start is not None:
            if i - start >= 2:
                strips.append(points[start:i])
            start = None
    return strips


def _boxes(objects) -> rr.Boxes3D:
    return rr.Boxes3D(
        centers=[o.center for o in objects],
        half_sizes=[o.half_size for o in objects],
        quaternions=[quaternion_xyzw(o.rotation) for o in objects],
        colors=[tuple(round(255 * c) for c in o.rgba) for o in objects],
        labels=[o.name for o in objects],
        show_labels=False,
        fill_mode="solid",
    )


def _pinhole(model: CameraModel) -> rr.Pinhole:
    return rr.Pinhole(focal_length=model.focal_px, principal_point=model.principal_px,
                      width=model.width, height=model.height, camera_xyz=rr.ViewCoordinates.RDF,
                      image_plane_distance=CAMERA_PLANE_M)


def quaternion_xyzw(rotation: np.ndarray) -> list[float]:
    """Unit quaternion (x, y, z, w) of a rotation matrix (3, 3) (Shepperd's method: stable for any angle)."""
    m = np.asarray(rotation, dtype=float)
    trace = np.trace(m)
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, s / 4]
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
        q = [0.0, 0.0, 0.0, (m[k, j] - m[j, k]) / s]
        q[i], q[j], q[k] = s / 4, (m[j, i] + m[i, j]) / s, (m[k, i] + m[i, k]) / s
    return [float(v) for v in np.asarray(q) / np.linalg.norm(q)]
