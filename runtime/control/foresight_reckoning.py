"""Foresight beside reality: what the policy predicted for tick t+H, judged when tick t+H arrives.

A world-model policy returns, with each action chunk computed from the observation of tick t, a
decoded picture per camera of tick t + H (H = 15 for InternVLA-A1). This module keeps those
predictions until the real frame t+H is observed, then scores them (PSNR, and latent L2 when the
policy can encode frames) against the "nothing moves" baseline of copying frame t.

Fed from two threads, read from others, all under one lock:
- the control thread calls `observe_tick` with every tick's frames, after the tick's action and
  snapshot: a dict insert and lookup, plus, once per inference, fitting frames t and t+H to the
  predicted size and the PSNRs (~2-4 ms for three 224 px cameras on a busy 2-core CPU);
- the policy runner calls `add_inference` the moment a result lands (so a new foresight picture
  is visible at once, not at the next tick);
- routes read `state`, `history`, `foresight_picture`, `reckoning_picture`, `wait_for_version`.
The reckoning picture (prediction | actual | heat map) is built only when a route asks for it.

Frames are kept by reference, not copied: robots hand out a fresh array every tick (the snapshot
relies on the same).
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from robot_io.foresight import Reckoning, reckon
from robot_io.images import latent_l2
from robot_io.policy import FrameEncoder, Policy

DEFAULT_HORIZON = 15  # InternVLA-A1 predicts frame t+15; used when the policy does not say
HISTORY_POINTS = 300  # metric points kept per camera (one per inference: minutes of history)
INFERENCE_MARKS = 300  # inference ticks kept for the chart's markers
# Frames are kept this many ticks beyond the horizon, so an inference that lands late (up to
# ~3 s at 15 Hz) can still find its frame t and frame t+H; later ones are not reckoned. Held by
# reference: (15 + 48) ticks x three 224 px cameras is ~28 MB.
FRAME_SLACK_TICKS = 48
HEAT_GAIN = 4.0  # |difference| is multiplied by this before colouring: typical errors are tens of grey levels
HEAT_COLORMAP = cv2.COLORMAP_INFERNO
SEPARATOR_PX = 2  # dark gap between the three pictures of a reckoning

NO_ENCODER_NOTE = (
    "Latent L2 is not measured: this policy exposes no frame encoder (Policy.frame_encoder); PSNR only."
)
NO_INFERENCE_MESSAGE = "No inference yet: run the policy to see its foresight."
NO_FORESIGHT_MESSAGE = (
    "This policy gives no foresight (it returned no predicted pictures): nothing to show here. "
    "Everything else works as usual."
)

Encoder = FrameEncoder


def foresight_horizon(policy: Policy) -> int:
    """The policy's foresight horizon in ticks (Policy.foresight_horizon), DEFAULT_HORIZON when it names none."""
    horizon = policy.foresight_horizon
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        return DEFAULT_HORIZON
    return horizon


def frame_encoder(policy: Policy) -> Encoder | None:
    """The policy's frame encoder for latent L2 (Policy.frame_encoder), or None when it has none."""
    return policy.frame_encoder()


def heat_map(pred: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Two uint8 (h, w, 3) pictures -> uint8 (h, w, 3) RGB map of their mean absolute difference."""
    diff = np.abs(pred.astype(np.int16) - actual.astype(np.int16)).mean(axis=2)  # (h, w)
    scaled = np.clip(diff * HEAT_GAIN, 0, 255).astype(np.uint8)  # (h, w)
    return cv2.cvtColor(cv2.applyColorMap(scaled, HEAT_COLORMAP), cv2.COLOR_BGR2RGB)


def reckoning_picture(pred: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """uint8 (h, w, 3) x 2 -> uint8 (h, 3w + 2 gaps, 3): prediction | actual | difference heat map."""
    gap = np.zeros((pred.shape[0], SEPARATOR_PX, 3), dtype=np.uint8)
    return np.concatenate([pred, gap, actual, gap, heat_map(pred, actual)], axis=1)


@dataclass(frozen=True)
class ForesightPoint:
    """One prediction of one camera, judged."""

    camera: str
    obs_tick: int  # tick t the prediction was made from
    target_tick: int  # t + horizon: the frame it was judged against
    psnr_db: float  # prediction vs actual frame t+H
    baseline_psnr_db: float  # frame t copied ("nothing moves") vs actual frame t+H
    latent_l2: float | None  # None when the policy has no encoder or returned no latents
    baseline_latent_l2: float | None


@dataclass(frozen=True)
class ForesightState:
    """What the foresight panel needs to know, cheap to copy and to send as JSON."""

    version: int  # bumps on any change below (new foresight, new reckoning, availability)
    foresight_version: int  # bumps with each new set of foresight pictures
    available: bool | None  # None: no inference yet; False: the latest inference had no foresight
    message: str  # what the panel says instead of pictures ("" when there are pictures)
    horizon: int
    obs_tick: int | None  # tick the latest foresight was predicted from
    done_time: float | None  # time.time() when that inference landed
    cameras: tuple[str, ...]  # cameras with a foresight picture in the latest inference
    reckonings: Mapping[str, ForesightPoint]  # camera -> its latest judged prediction
    reckoning_ids: Mapping[str, int]  # camera -> id of that reckoning (for the picture's URL)
    latent_note: str  # why latent L2 is missing, "" when it is measured
    problem: str  # why some foresight of the latest inference was ignored, "" when none was


@dataclass
class _Pending:
    obs_tick: int
    pictures: dict[str, np.ndarray]  # camera -> uint8 (h, w, 3) predicted frame t+H
    latents: dict[str, np.ndarray]  # camera -> predicted latent of t+H (may be empty)


class ForesightReckoner:
    def __init__(
        self,
        camera_keys: list[str],
        horizon: int = DEFAULT_HORIZON,
        encoder: Encoder | None = None,
        history_points: int = HISTORY_POINTS,
    ) -> None:
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1 tick, got {horizon}")
        self.camera_keys = list(camera_keys)
        self.horizon = horizon
        self._encoder = encoder
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._frames: dict[int, Mapping[str, np.ndarray]] = {}  # tick -> camera -> uint8 (H, W, 3)
        self._last_tick = -1
        self._pending: dict[int, _Pending] = {}  # target tick -> predictions waiting for it
        self._history = {c: collections.deque(maxlen=history_points) for c in self.camera_keys}
        self._inference_ticks: collections.deque[int] = collections.deque(maxlen=INFERENCE_MARKS)
        self._latest: dict[str, Reckoning] = {}  # camera -> latest reckoning
        self._latest_points: dict[str, ForesightPoint] = {}  # camera -> its figures, latents included
        self._pictures: dict[str, tuple[int, np.ndarray]] = {}  # camera -> (reckoning id, built picture)
        self._next_id = 0
        self._version = 0
        self._foresight_version = 0
        self._available: bool | None = None
        self._foresight: dict[str, np.ndarray] = {}  # camera -> latest predicted picture
        self._obs_tick: int | None = None
        self._done_time: float | None = None
        self._encoder_error = ""
        self._problem = ""  # why some foresight of the latest inference was ignored

    # --- writers --------------------------------------------------------------------------
    def observe_tick(self, tick: int, frames: Mapping[str, np.ndarray]) -> list[ForesightPoint]:
        """Control thread, every tick: remember the frames; judge predictions made for this tick
        (returned, one point per camera; empty on most ticks)."""
        with self._lock:
            self._frames[tick] = frames
            self._last_tick = tick
            oldest = tick - self.horizon - FRAME_SLACK_TICKS
            for old in [t for t in self._frames if t < oldest]:
                del self._frames[old]
            due = self._pending.pop(tick, None)
            baseline = self._frames.get(due.obs_tick) if due is not None else None
        if due is not None and baseline is not None:
            return self._reckon(due, baseline, frames, tick)
        return []

    def add_inference(self, result: Any) -> None:
        """Runner thread, per accepted inference (`runtime.control.policy_runner.InferenceResult`)."""
        output, obs_tick = result.output, result.obs_tick
        pictures, latents, problems = valid_foresight(output.foresight, output.foresight_latents, self.camera_keys)
        target = obs_tick + self.horizon
        with self._lock:
            self._inference_ticks.append(obs_tick)
            self._done_time = time.time()
            self._obs_tick = obs_tick
            self._available = bool(pictures)
            self._foresight = pictures
            self._foresight_version += 1
            late = None
            if pictures:
                pending = _Pending(obs_tick, pictures, latents)
                if target > self._last_tick:
                    self._pending[target] = pending
                    for stale in [t for t in self._pending if t < self._last_tick - FRAME_SLACK_TICKS]:
                        del self._pending[stale]
                else:  # the inference took longer than the horizon: frame t+H is already here
                    late = (pending, self._frames.get(obs_tick), self._frames.get(target))
            self._problem = "; ".join(problems)
            self._bump()
        if late is not None and late[1] is not None and late[2] is not None:
            self._reckon(late[0], late[1], late[2], target)

    def use_policy(self, horizon: int, encoder: Encoder | None) -> None:
        """Another policy drives from now on: its horizon and frame encoder; the old predictions go."""
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1 tick, got {horizon}")
        with self._lock:
            self.horizon, self._encoder = horizon, encoder
            self._pending.clear()
            self._foresight.clear()
            self._available = None
            self._encoder_error = ""
            self._bump()

    def reset(self) -> None:
        """A new scene: frames before it say nothing about frames after it."""
        with self._lock:
            self._frames.clear()
            self._pending.clear()

    # --- readers (any thread) -------------------------------------------------------------
    def state(self) -> ForesightState:
        with self._lock:
            if self._available is None:
                message = NO_INFERENCE_MESSAGE
            elif not self._available:
                message = NO_FORESIGHT_MESSAGE
            else:
                message = ""
            note = NO_ENCODER_NOTE if self._encoder is None else self._encoder_error
            return ForesightState(
                version=self._version,
                foresight_version=self._foresight_version,
                available=self._available,
                message=message,
                horizon=self.horizon,
                obs_tick=self._obs_tick,
                done_time=self._done_time,
                cameras=tuple(self._foresight),
                reckonings=dict(self._latest_points),
                reckoning_ids={c: r.id for c, r in self._latest.items()},
                latent_note=note,
                problem=self._problem,
            )

    def history(self) -> dict[str, Any]:
        """Metric history as plain lists (JSON-ready): per camera, points oldest first."""
        with self._lock:
            points = {c: list(h) for c, h in self._history.items()}
            inferences = list(self._inference_ticks)
        cameras = {
            camera: {
                "obs_tick": [p.obs_tick for p in ps],
                "target_tick": [p.target_tick for p in ps],
                "psnr_db": [p.psnr_db for p in ps],
                "baseline_psnr_db": [p.baseline_psnr_db for p in ps],
                "latent_l2": [p.latent_l2 for p in ps],
                "baseline_latent_l2": [p.baseline_latent_l2 for p in ps],
            }
            for camera, ps in points.items()
        }
        return {"horizon": self.horizon, "inference_ticks": inferences, "cameras": cameras}

    def foresight_picture(self, camera: str) -> tuple[int, int, np.ndarray] | None:
        """(foresight version, obs tick, uint8 (h, w, 3)) of the latest inference, or None."""
        with self._lock:
            picture = self._foresight.get(camera)
            if picture is None:
                return None
            return self._foresight_version, self._obs_tick, picture

    def reckoning_picture(self, camera: str) -> tuple[Reckoning, np.ndarray] | None:
        """The latest reckoning of `camera` and its picture, built on first request only."""
        with self._lock:
            reckoning = self._latest.get(camera)
            cached = self._pictures.get(camera)
        if reckoning is None:
            return None
        if cached is not None and cached[0] == reckoning.id:
            return reckoning, cached[1]
        picture = reckoning_picture(reckoning.prediction, reckoning.actual)  # (h, 3w + gaps, 3)
        with self._lock:
            self._pictures[camera] = (reckoning.id, picture)
        return reckoning, picture

    def wait_for_version(self, after: int, timeout_s: float) -> int:
        """Block until the version passes `after` (or the timeout); returns the version."""
        with self._changed:
            self._changed.wait_for(lambda: self._version > after, timeout_s)
            return self._version

    # --- internals ------------------------------------------------------------------------
    def _reckon(
        self,
        pending: _Pending,
        then: Mapping[str, np.ndarray],
        now: Mapping[str, np.ndarray],
        target_tick: int,
    ) -> list[ForesightPoint]:
        """Score every predicted view against the real frame (outside the lock: readers never wait on it)."""
        judged: list[tuple[Reckoning, ForesightPoint]] = []
        actual_latents, then_latents, encoder_error = self._encode(pending, then, now)
        for camera, prediction in pending.pictures.items():
            if camera not in now or camera not in then:
                continue
            reckoning = reckon(prediction, now[camera], then[camera], pending.obs_tick, target_tick)
            predicted_latent = pending.latents.get(camera)
            l2 = base_l2 = None
            if actual_latents is not None and camera in actual_latents and predicted_latent is not None:
                l2 = latent_l2(predicted_latent, actual_latents[camera])
                base_l2 = latent_l2(then_latents[camera], actual_latents[camera])
            point = ForesightPoint(camera, pending.obs_tick, target_tick, reckoning.psnr_db, reckoning.baseline_psnr_db,
                                   latent_l2=l2, baseline_latent_l2=base_l2)
            judged.append((reckoning, point))
        with self._lock:
            for reckoning, point in judged:
                self._latest[point.camera] = replace(reckoning, id=self._next_id)
                self._latest_points[point.camera] = point
                self._next_id += 1
                self._history[point.camera].append(point)
            if encoder_error:
                self._encoder_error = encoder_error
            if judged:
                self._bump()
        return [point for _, point in judged]

    def _encode(self, pending: _Pending, then, now):
        """Latents of frame t and frame t+H from the policy's encoder; (None, None, why) without one.

        It runs on the calling thread (the control thread for on-time reckonings), once per
        inference: a policy should only expose an encoder that is cheap."""
        if self._encoder is None or not pending.latents:
            return None, None, ""
        cameras = [c for c in pending.latents if c in now and c in then]
        try:
            actual = self._encoder({c: now[c] for c in cameras})
            before = self._encoder({c: then[c] for c in cameras})
        except Exception as err:  # noqa: BLE001 - a failing encoder costs the latent metric, not the session
            return None, None, f"Latent L2 is not measured: the policy's encoder failed ({type(err).__name__}: {err})."
        return actual, before, ""

    def _bump(self) -> None:
        """Caller holds the lock."""
        self._version += 1
        self._changed.notify_all()


def valid_foresight(
    foresight: Mapping[str, Any] | None,
    latents: Mapping[str, Any] | None,
    camera_keys: list[str],
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], list[str]]:
    """The usable predicted pictures and latents; a malformed view is dropped with a reason
    instead of failing the runner."""
    pictures: dict[str, np.ndarray] = {}
    problems: list[str] = []
    for camera, picture in (foresight or {}).items():
        array = np.asarray(picture)
        if camera not in camera_keys:
            problems.append(f"foresight for unknown camera {camera!r} ignored")
        elif array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3 or 0 in array.shape:
            problems.append(f"foresight of {camera!r} ignored: expected uint8 (H, W, 3), got {array.dtype} {array.shape}")
        else:
            pictures[camera] = array
    usable_latents = {c: np.asarray(v) for c, v in (latents or {}).items() if c in pictures}
    return pictures, usable_latents, problems
