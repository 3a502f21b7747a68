"""Success measured as the console runs: the real console session, headless, at real time.

    python -m bench.evaluate_console --episodes N [--seed S] [--checkpoint DIR] [--policy model|expert]
        [--belt-speed LOW,HIGH] [--json OUT] [--browser] [--record-to DIR] [--no-rerun]
        [--execute-horizon N] [--blend MODE --blend-steps N --blend-k K] (and the other chunk flags)

The console app.py serves (app.open_console: the policy app.build_policy builds, a Session whose
control thread ticks at the sim's rate on the wall clock with inference beside the loop and the
safety layer, the Rerun logger) runs N held-out scenes (seeds S, S+1, ...: below the training
demonstrations', as model.evaluate refuses the others) with nobody at the page. Each scene is
reset, the policy runs the scene's instruction and the whole attempt is recorded into a LeRobot
dataset (a temporary one deleted at the end, or --record-to), until the target has settled in the
bin or the sim's time limit (runtime/session_scenes.py). --browser also serves the page on
127.0.0.1 as app.py does and keeps one headless Chromium page on it for the whole run, so the
browser's load is on the same cores as on an operator's laptop.

It reports success overall, per belt-speed band and per colour (robot_io/sim/rollout_summary.py,
as model.evaluate), the latency of every inference whose chunk took over (ms, and ticks from its
observation to its take-over), the control loop's rate, period error and missed ticks, and the
frames the recording lost. model.evaluate measures the policy unpaced with a fixed inference
latency; this measures what the console gets on this machine.
"""

from __future__ import annotations

import app  # noqa: I001 - first: it sets MUJOCO_GL and the thread settings before mujoco loads

import argparse
import collections
import contextlib
import dataclasses
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn

from model.evaluate import check_held_out, episode_line, write_json
from model.shipped import SHIPPED_CHECKPOINT
from robot_io.chunks.flags import add_chunk_flags, chunks_from_flags
from robot_io.datasets.journal import read_info
from robot_io.datasets.schema import INFO_PATH, RecorderError
from robot_io.sim.conveyor_env import ConveyorSimConfig, SimState, parse_speed_range
from robot_io.sim.rollout import RolloutResult
from robot_io.sim.rollout_summary import format_summary, summarize
from robot_io.sim.sim_robot import SIM_STATE_KEY, SimRobot
from robot_io.wire.remote_policy import RemotePolicyError
from runtime import session_scenes
from runtime.control.session_flags import add_process_flags, process_argv, process_from_flags
from runtime.control.snapshot import Snapshot
from runtime.control.tick_record import TickRecord
from tests.browser_support import chromium_page, free_port, wait_for_instruction

PERCENTILES = (50, 90, 99)
STATE_HISTORY_TICKS = 64  # the sim states kept for reading a scene's end
PAGE_START_TIMEOUT_S = 120.0  # the server up and the page's Gradio client connected
PAGE_POLL_MS = 1000  # the browser thread hands Playwright's events over this often
PAGE_HEIGHT = 2400  # the whole page on screen: feeds, foresight and plan all drawn
SAVE_TIMEOUT_S = 300.0  # the writer saving the last episodes after the run
WARMUP_S = 2.0  # ticks of the loop before measuring starts


class RunMeter:
    """A session subscriber: every tick of the run on the control thread, appends only.

    A chunk that appears in the snapshot for the first time is an inference that took over: its
    latency (ms) and the ticks from its observation to that tick are kept, every one of them."""

    def __init__(self) -> None:
        self.measuring = False
        self.first: Snapshot | None = None
        self.last: Snapshot | None = None
        self.latency_ms: list[float] = []
        self.delay_ticks: list[int] = []
        self.tick_times: list[float] = []  # wall time of each tick
        self.recorded_frames = 0  # ticks the loop handed to the recording
        self.backlog_max = 0
        self.recording_errors: list[str] = []
        self._chunk = None
        self._states: collections.deque[tuple[int, SimState]] = collections.deque(maxlen=STATE_HISTORY_TICKS)

    def on_tick(self, record: TickRecord) -> None:
        if not self.measuring:
            return
        snapshot = record.snapshot
        self.first = self.first or snapshot
        self.last = snapshot
        self.tick_times.append(snapshot.wall_time)
        chunk = snapshot.chunk
        if chunk is not None and chunk is not self._chunk:
            self._chunk = chunk
            self.latency_ms.append(chunk.latency_ms)
            self.delay_ticks.append(snapshot.tick - chunk.obs_tick)
        recording = snapshot.recording
        if recording is not None:
            self.recorded_frames += recording.active
            self.backlog_max = max(self.backlog_max, recording.backlog)
            if recording.error and recording.error not in self.recording_errors:
                self.recording_errors.append(recording.error)
        self._states.append((snapshot.tick, record.observation[SIM_STATE_KEY]))

    def sim_state(self, tick: int) -> SimState | None:
        """The privileged sim state observed at `tick` (the world after tick - 1's command)."""
        return next((state for t, state in reversed(self._states) if t == tick), None)


def measure_scene(console: app.Console, meter: RunMeter, seed: int) -> tuple[RolloutResult, dict[str, Any]]:
    """One scene with nobody at the page: (its result as robot_io.sim.rollout gives it, its own timings)."""
    session = console.session
    robot: SimRobot = session.robot
    inferences = len(meter.latency_ms)
    ran = session_scenes.run_scene(session, seed, robot.config.max_ticks, record=True)
    episode = robot.episode  # set by the reset; the next reset is ours to ask for
    if episode is None or episode.seed != seed:
        raise RuntimeError(f"the sim runs another scene than seed {seed}: {episode}")
    # The observation of the tick after the end shows the world the end's success was judged on.
    session_scenes.wait_for(session, lambda s: s.tick >= ran.end.tick + 2, session_scenes.SCENE_START_TIMEOUT_S)
    state = meter.sim_state(ran.end.tick + 1)
    in_bin = tuple(c for c, inside in zip(state.block_colors, state.in_bin) if inside) if state else ()
    result = RolloutResult(episode, ran.success, ran.ticks, in_bin, ran.ticks / session.config.fps)
    latencies = meter.latency_ms[inferences:]
    timings = {"inferences": len(latencies),
               "inference_ms_p50": float(np.percentile(latencies, 50)) if latencies else None,
               "missed_ticks": ran.end.loop.missed_ticks - ran.start.loop.missed_ticks}
    return result, timings


def percentiles(values: list[float]) -> dict[str, float] | None:
    return {f"p{q}": float(np.percentile(values, q)) for q in PERCENTILES} if len(values) else None


def run_report(meter: RunMeter, period_error_ms: list[tuple[float, float]], fps: float) -> dict[str, Any]:
    """Inference and control-loop figures over the whole run. period_error_ms: the session's own
    (p50, p99) period error, over its last-minute window, sampled at every scene end."""
    first, last = meter.first, meter.last
    span = meter.tick_times[-1] - meter.tick_times[0]
    intervals_ms = np.diff(meter.tick_times) * 1e3
    return {
        "inference": {"count": len(meter.latency_ms), "ms": percentiles(meter.latency_ms),
                      "ticks": percentiles(meter.delay_ticks)},
        "loop": {
            "fps": fps, "ticks": len(meter.tick_times),
            "achieved_hz": (len(meter.tick_times) - 1) / span if span > 0 else 0.0,
            "missed_ticks": last.loop.missed_ticks - first.loop.missed_ticks,
            "period_error_p50_ms": float(np.median([p50 for p50, _ in period_error_ms])),
            "period_error_p99_ms": max(p99 for _, p99 in period_error_ms),  # the worst window
            "tick_interval_ms": percentiles(list(intervals_ms)),
        },
    }


def recording_report(console: app.Console, meter: RunMeter, before: int, episodes: int) -> dict[str, Any]:
    """What the loop handed the writer against what the dataset holds, once the writer has saved
    this run's `episodes` episodes after the `before` it held."""
    saved = session_scenes.wait_for(
        console.session, lambda s: s.recording.saved_episodes >= before + episodes and s.recording.backlog == 0
        or bool(s.recording.error), SAVE_TIMEOUT_S)
    status = (saved or console.session.snapshot()).recording
    new = status.episodes[before:]
    frames = sum(e.frames for e in new)
    return {"dataset": status.dataset, "episodes_saved": len(new), "frames_sent": meter.recorded_frames,
            "frames_saved": frames, "frames_dropped": meter.recorded_frames - frames,
            "backlog_max": meter.backlog_max, "outcomes": [e.outcome for e in new],
            "errors": meter.recording_errors + ([status.error] if status.error and status.error not in meter.recording_errors else [])}


def evaluate(console: app.Console, seeds: list[int], viewer: BrowserViewer | None) -> dict[str, Any]:
    session = console.session
    meter = RunMeter()
    session.subscribe(meter)
    record_root = session.config.record_root
    before = read_info(record_root)["total_episodes"] if (record_root / INFO_PATH).is_file() else 0
    first = session_scenes.wait_for_loop(session)
    # Start-up (the writer process, the first renders, the page loading) is not the run: the loop's
    # published stats lag it by up to 0.25 s, so measuring starts once it is well behind.
    session_scenes.wait_for(session, lambda s: s.tick >= first.tick + WARMUP_S * session.config.fps, 2 * WARMUP_S)
    meter.measuring = True
    started = time.monotonic()
    results, per_scene, period_error_ms = [], [], []
    for i, seed in enumerate(seeds):
        result, timings = measure_scene(console, meter, seed)
        results.append(result)
        per_scene.append(timings)
        loop = meter.last.loop
        period_error_ms.append((loop.period_error_p50_ms, loop.period_error_p99_ms))
        p50 = timings["inference_ms_p50"]
        print(f"[{i + 1}/{len(seeds)}] {episode_line(result)}; {timings['inferences']} inferences"
              + (f", p50 {p50:.0f} ms" if p50 is not None else "") + f", {timings['missed_ticks']} missed ticks", flush=True)
    meter.measuring = False
    seconds = time.monotonic() - started
    closed = summarize(results, session.robot.config) | {"seeds": [seeds[0], seeds[-1]]}
    for episode, timings in zip(closed["per_episode"], per_scene):
        episode.update(timings)
    report = {"closed_loop": closed, **run_report(meter, period_error_ms, session.config.fps),
              "recording": recording_report(console, meter, before, len(seeds)), "seconds": seconds}
    if viewer is not None:
        report["browser"] = viewer.feed_rates()
    return report


def format_report(report: dict[str, Any]) -> str:
    setup = report["setup"]
    closed, inference, loop, recording = report["closed_loop"], report["inference"], report["loop"], report["recording"]
    seeds = closed["seeds"]
    lines = [f"as the console runs it: seeds {seeds[0]}-{seeds[-1]}, {setup['policy_label']}, {setup['fps']:g} Hz, "
             f"{setup['execute_horizon']} steps per chunk, chunks blended {setup['blend']['mode']!r}, recording on, "
             f"Rerun {'on' if setup['rerun'] else 'off'}, {'a browser on the page' if setup['browser'] else 'no browser'} "
             f"({report['seconds']:.0f} s):", format_summary(closed)]
    if inference["ms"] is not None:
        ms, ticks = inference["ms"], inference["ticks"]
        lines.append(f"inference, all {inference['count']} chunks that took over: p50 / p90 / p99 "
                     f"{ms['p50']:.0f} / {ms['p90']:.0f} / {ms['p99']:.0f} ms; {ticks['p50']:.1f} / {ticks['p90']:.1f} / "
                     f"{ticks['p99']:.1f} ticks from the observation to the take-over")
    else:
        lines.append("inference: no chunk took over")
    interval = loop["tick_interval_ms"]
    lines.append(f"control loop: {loop['achieved_hz']:.2f} Hz over {loop['ticks']} ticks, {loop['missed_ticks']} missed; "
                 f"period error p50 {loop['period_error_p50_ms']:.1f} ms, p99 {loop['period_error_p99_ms']:.1f} ms "
                 f"(worst minute); tick interval p50 {interval['p50']:.1f} ms, p99 {interval['p99']:.1f} ms")
    lines.append(f"recording: {recording['frames_sent']} frames sent by the loop, {recording['frames_saved']} in "
                 f"{recording['episodes_saved']} saved episodes, dropped {recording['frames_dropped']}; writer backlog max "
                 f"{recording['backlog_max']} frames" + "".join(f"\n  error: {e}" for e in recording["errors"]))
    if "browser" in report:
        browser = report["browser"]
        feeds = ", ".join(f"{camera} {fps:.1f}" for camera, fps in browser["feeds_fps"].items())
        lines.append(f"browser: camera feeds {feeds} frames/s" + (f"; error: {browser['error']}" if browser["error"] else ""))
    return "\n".join(lines)


# ---- the page and the browser ------------------------------------------------------------------

@contextlib.contextmanager
def serve_page(console: app.Console):
    """The console's page on 127.0.0.1 as app.py serves it (uvicorn, in a thread); yields its URL."""
    port = console.args.port
    server = uvicorn.Server(uvicorn.Config(console.app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="console-page", daemon=True)
    thread.start()
    try:
        up = time.monotonic() + PAGE_START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > up:
                raise RuntimeError(f"the console page did not start on port {port}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class BrowserViewer:
    """One headless Chromium page (Debian's, tests/browser_support.py) on the console for the whole
    run. Playwright's sync API stays on the thread that started it: this one, which also hands its
    events over every PAGE_POLL_MS so a long run does not pile them up."""

    def __init__(self, url: str, cameras: list[str]) -> None:
        self.url, self.cameras = url, cameras
        self.error = ""
        self._frames: dict[str, int] = {}
        self._seconds = 0.0
        self._ready, self._stop = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, name="browser", daemon=True)

    def __enter__(self) -> BrowserViewer:
        self._thread.start()
        self._ready.wait(PAGE_START_TIMEOUT_S)
        if self.error or not self._ready.is_set():
            self.close()
            raise RuntimeError(f"the browser did not open the console page: {self.error or 'timed out'}")
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        count = "cams => Object.fromEntries(cams.map(c => [c, window.feedStats?.[c]?.frames ?? 0]))"
        try:
            with chromium_page(height=PAGE_HEIGHT) as page:
                page.goto(self.url)
                wait_for_instruction(page)  # the page's load event ran: its Gradio client is connected
                at_start, started = page.evaluate(count, self.cameras), time.monotonic()
                self._ready.set()
                while not self._stop.is_set():
                    page.wait_for_timeout(PAGE_POLL_MS)
                    frames, self._seconds = page.evaluate(count, self.cameras), time.monotonic() - started
                    self._frames = {c: frames[c] - at_start[c] for c in self.cameras}
        except Exception as err:  # noqa: BLE001 - a browser that fails is reported, the run goes on
            self.error = f"{type(err).__name__}: {err}"
        finally:
            self._ready.set()

    def feed_rates(self) -> dict[str, Any]:
        """Frames per second each camera feed delivered to the page so far, and any browser error."""
        seconds = self._seconds or float("inf")
        return {"feeds_fps": {c: self._frames.get(c, 0) / seconds for c in self.cameras}, "error": self.error}


# ---- the command ------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, required=True, help="held-out scenes to run")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first scene; the others follow")
    parser.add_argument("--checkpoint", type=Path, default=SHIPPED_CHECKPOINT, help="checkpoint folder (default: the shipped model)")
    parser.add_argument("--policy", choices=app.POLICIES, default="model",
                        help="model: the checkpoint of --checkpoint; expert: the sim's scripted expert (as app.py)")
    parser.add_argument("--belt-speed", type=parse_speed_range, default=ConveyorSimConfig.belt_speed_range,
                        help="LOW,HIGH m/s of the scenes (default: the training range)")
    parser.add_argument("--json", type=Path, default=None, help="write every figure and scene here")
    parser.add_argument("--browser", action="store_true",
                        help="serve the console page on 127.0.0.1 and keep a headless Chromium page on it throughout")
    parser.add_argument("--record-to", type=Path, default=None,
                        help="LeRobot dataset folder the attempts are recorded to, resumed when it exists "
                             "(default: a temporary one, deleted at the end)")
    parser.add_argument("--rerun", action=argparse.BooleanOptionalAction, default=True,
                        help="the console's live Rerun logger (on by default, as in the console)")
    add_process_flags(parser)  # the console's own: the model in its own process or not
    add_chunk_flags(parser)
    args = parser.parse_args(argv)
    args.process = process_from_flags(parser, args)
    args.chunks = chunks_from_flags(parser, args)
    if args.episodes < 1:
        parser.error(f"--episodes must be >= 1, got {args.episodes}")
    check_held_out(parser, args.seed, args.episodes)
    try:
        ConveyorSimConfig(belt_speed_range=args.belt_speed)
    except ValueError as err:
        parser.error(str(err))
    return args


def console_args(args: argparse.Namespace, record_to: Path, workdir: Path) -> argparse.Namespace:
    """app.py's own flags for this run: its policy, recording every attempt to `record_to`, on loopback."""
    argv = ["--host", "127.0.0.1", "--port", str(free_port()), "--policy", args.policy, "--checkpoint", str(args.checkpoint),
            "--record-to", str(record_to), "--recording-mode", "attempts", "--seed", str(args.seed),
            "--audit-log", str(workdir / "audit.jsonl"), "--rerun-port", str(free_port()),
            *([] if args.rerun else ["--no-rerun"]),
            *process_argv(args.process)]
    parsed = app.parse_args(argv)
    parsed.chunks = args.chunks
    parsed.session = dataclasses.replace(parsed.session, chunks=args.chunks)
    return parsed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    seeds = list(range(args.seed, args.seed + args.episodes))
    with tempfile.TemporaryDirectory(prefix="evaluate_console_") as workdir:
        parsed = console_args(args, args.record_to or Path(workdir) / "attempts", Path(workdir))
        try:
            console = app.open_console(parsed, belt_speed_range=args.belt_speed)
        except (ValueError, RecorderError, OSError, RemotePolicyError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        try:
            console.start()
            with contextlib.ExitStack() as stack:
                viewer = None
                if args.browser:
                    viewer = stack.enter_context(BrowserViewer(stack.enter_context(serve_page(console)),
                                                               console.session.camera_keys))
                report = evaluate(console, seeds, viewer)
        except RuntimeError as err:  # a scene that did not start or stalled, a page that did not open
            print(f"error: {err}", file=sys.stderr)
            return 1
        finally:
            console.close()  # the session closes its policy (a process of its own, a connection)
    setup = {"checkpoint": str(args.checkpoint.absolute()) if args.policy == "model" else None,
             "policy_label": console.session.policy_label, "fps": parsed.session.fps,
             "execute_horizon": args.chunks.execute_horizon, "blend": dataclasses.asdict(args.chunks.blend),
             "belt_speed_range": list(args.belt_speed), "browser": args.browser, "rerun": console.rerun is not None,
             "record_to": str(args.record_to) if args.record_to else None}
    report = {"setup": setup, **report}
    print(format_report(report), flush=True)
    write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
