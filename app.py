"""Foresight Console: parse the config, build the session, build the UI, serve, close in finally.

Default: the MuJoCo conveyor simulation driven by the shipped tiny InternVLA-A1, on http://127.0.0.1:7860.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")  # offscreen rendering without a display; before mujoco loads
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local; never wait on a model hub
os.environ.setdefault("LP_NUM_THREADS", "1")  # steadier llvmpipe render times beside the policy

import uvicorn  # noqa: E402
from fastapi import FastAPI  # noqa: E402

from robot_io.chunks.flags import add_chunk_flags, chunks_from_flags  # noqa: E402
from robot_io.policy import Policy  # noqa: E402
from robot_io.datasets.schema import RecorderError  # noqa: E402
from robot_io.datasets.conversion import default_cache_root  # noqa: E402
from robot_io.devices.device_flags import add_device_arguments, device_request  # noqa: E402
from robot_io.devices.lerobot_devices import build_devices  # noqa: E402
from robot_io.wire.protocol import TOKEN_ENV  # noqa: E402
from robot_io.wire.remote_policy import SCHEMES as WEBSOCKET_SCHEMES, RemotePolicy, RemotePolicyConfig, RemotePolicyError  # noqa: E402
from robot_io.wire.lerobot_grpc_policy import SCHEME as LEROBOT_SCHEME, LeRobotGrpcPolicy, LeRobotServerConfig  # noqa: E402
from robot_io.config_flags import FlagGroup, add_config_flags  # noqa: E402
from robot_io.devices.robot import Robot, camera_keys, camera_shapes, state_keys  # noqa: E402
from model.shipped import SHIPPED_CHECKPOINT  # noqa: E402
from robot_io.sim.scripted_expert import ScriptedExpert  # noqa: E402
from robot_io.sim.conveyor_env import ConveyorSimConfig  # noqa: E402
from robot_io.sim.foresight_setting import add_setting_flags, setting_from_flags  # noqa: E402
from robot_io.sim.sim_robot import SimRobot  # noqa: E402
from runtime.replay.open_loop import PolicyLayout, parse_camera_mapping  # noqa: E402
from runtime.replay.service import ReplayService, ReplayServiceConfig  # noqa: E402
from runtime.curation.service import CurationConfig, CurationService  # noqa: E402
from runtime.rerun.logger import RerunConfig, RerunError, RerunLogger  # noqa: E402
from runtime.control.checkpoint_loader import CheckpointLoader  # noqa: E402
from runtime.control.safety import WorkspaceBox  # noqa: E402
from runtime.control.session import Session, SessionConfig  # noqa: E402
from runtime.control.session_flags import add_process_flags, add_session_flags, process_from_flags, session_from_flags  # noqa: E402
from runtime.control.policy_process import PolicyProcess, PolicyProcessConfig  # noqa: E402
from runtime.training.jobs import TrainingConfig, TrainingJobs  # noqa: E402
from ui.access import Access  # noqa: E402
from ui.console import ConsoleParts, build_app  # noqa: E402

GIL_SWITCH_INTERVAL_S = 0.001  # the control thread gets the GIL back within 1 ms (default 5 ms)
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
POLICIES = ("model", "expert")
ON_EXIT = ("save", "discard")  # what Ctrl-C / SIGTERM does with the episode in progress
DEFAULT_REPLAY_ROOT = Path("recordings")
DEFAULT_CHECKPOINT_ROOTS = [SHIPPED_CHECKPOINT.parent, Path("runs")]
SECRET_ARGS = {"policy_token"}  # never written to the audit log
# What a grpc:// --policy-url asks LeRobot's policy server to load.
LEROBOT_SERVER_FLAGS = FlagGroup(LeRobotServerConfig, ("policy_path", "policy_type", "device"), prefix="server-",
                                 names={"policy_path": "server-policy"})


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--image-size", type=int, default=224, help="camera width and height in pixels")
    parser.add_argument("--policy", choices=POLICIES, default="model",
                        help="model: the InternVLA-A1 checkpoint of --checkpoint; expert: the sim's scripted expert")
    parser.add_argument("--checkpoint", type=Path, default=SHIPPED_CHECKPOINT,
                        help="InternVLA-A1 checkpoint folder (model.safetensors, config.json, stats.json); "
                             "default: the shipped tiny model trained on the conveyor sim")
    parser.add_argument("--policy-url", default=None, metavar="ws://HOST:PORT|grpc://HOST:PORT",
                        help="drive with a policy served elsewhere instead of --checkpoint / --policy: ws:// is "
                             "openpi's websocket protocol (python -m model.serve), grpc:// LeRobot's async-inference "
                             "policy server (python -m lerobot.async_inference.policy_server; name what it loads "
                             "with --server-policy)")
    parser.add_argument("--lerobot-policy", type=Path, default=None, metavar="DIR",
                        help="drive with a policy trained by lerobot-train (ACT, Diffusion, SmolVLA, pi0 ...): its "
                             "pretrained_model folder, e.g. outputs/train/NAME/checkpoints/last/pretrained_model")
    parser.add_argument("--policy-token", default=os.environ.get(TOKEN_ENV), metavar="T",
                        help=f"the ws:// policy server's token (default: ${TOKEN_ENV})")
    add_config_flags(parser, LEROBOT_SERVER_FLAGS)
    parser.add_argument("--record-to", type=Path, default=Path("recordings/console"),
                        help="LeRobot dataset folder for episodes (resumed when it exists)")
    parser.add_argument("--no-record", action="store_true", help="disable recording")
    parser.add_argument("--workspace", default=None, metavar="X0,Y0,Z0,X1,Y1,Z1",
                        help="end-effector box in world metres: a command leaving it is held (robots with forward "
                             "kinematics); write --workspace=... when the first number is negative")
    parser.add_argument("--on-exit", choices=ON_EXIT, default=ON_EXIT[not SessionConfig.save_on_exit],
                        help="what Ctrl-C / SIGTERM does with the episode in progress")
    parser.add_argument("--replay-root", type=Path, action="append", default=None, metavar="DIR",
                        help="folder whose LeRobot datasets (v3.0, or v2.1 converted) open-loop replay "
                             "may read; repeatable (default: recordings)")
    parser.add_argument("--replay-cameras", default="", metavar="MAP",
                        help="replay's initial camera mapping, policy_camera=dataset_camera pairs, "
                             "e.g. head=cam_high,wrist=cam_left_wrist (default: the same names)")
    parser.add_argument("--replay-cache", type=Path, default=default_cache_root(), metavar="DIR",
                        help="where v2.1 datasets are converted to v3.0 for replay (the source is never written)")
    parser.add_argument("--rerun", action=argparse.BooleanOptionalAction, default=True,
                        help="live Rerun view of the plan at /rerun (gRPC on 127.0.0.1:--rerun-port)")
    parser.add_argument("--rerun-port", type=int, default=RerunConfig.grpc_port, help="Rerun's gRPC port")
    parser.add_argument("--rerun-image-every", type=int, default=RerunConfig.image_every_ticks,
                        help="log camera images to Rerun every N ticks (raise it when the viewer falls behind)")
    parser.add_argument("--rerun-dir", type=Path, default=RerunConfig.save_dir,
                        help="folder the Rerun page's Save button writes session .rrd files to")
    parser.add_argument("--checkpoint-root", type=Path, action="append", default=None, metavar="DIR",
                        help="folder whose checkpoints the page may load without a restart; repeatable "
                             "(default: model/weights and runs)")
    parser.add_argument("--train-out", type=Path, default=TrainingConfig.out_root, metavar="DIR",
                        help="where trainings started from the page write their run folders (keep it under a "
                             "--checkpoint-root to hot-swap the results)")
    parser.add_argument("--train-threads", type=int, default=TrainingConfig.threads, metavar="N",
                        help="torch CPU threads of a training started from the page")
    parser.add_argument("--train-nice", type=int, default=TrainingConfig.niceness, metavar="N",
                        help="niceness (0-19) of a training started from the page; 19 yields the CPU to the console")
    parser.add_argument("--users", type=Path, default=None, metavar="FILE",
                        help="logins (python -m ui.access add-user FILE NAME); required off loopback")
    parser.add_argument("--require-login", action="store_true",
                        help="ask for a login on loopback too (a machine several people use)")
    parser.add_argument("--audit-log", type=Path, default=Path("recordings/audit.jsonl"), metavar="FILE",
                        help="who did what: logins, failures, commands (JSON lines)")
    add_process_flags(parser)
    add_session_flags(parser)
    add_chunk_flags(parser)
    add_device_arguments(parser)
    add_setting_flags(parser)
    args, leftovers = parser.parse_known_args(argv)
    args.chunks = chunks_from_flags(parser, args)
    args.setting = setting_from_flags(parser, args)
    if args.lerobot_policy is not None and args.policy_url:
        parser.error("--lerobot-policy and --policy-url each name the policy that drives: give one")
    try:
        workspace = WorkspaceBox.parse(args.workspace) if args.workspace else None
    except ValueError as err:
        parser.error(str(err))
    args.process = process_from_flags(parser, args)
    model = args.checkpoint if args.policy == "model" and not args.policy_url else None
    args.session = session_from_flags(parser, args, checkpoint=model, chunks=args.chunks, workspace=workspace,
                                      record_root=None if args.no_record else args.record_to,
                                      save_on_exit=args.on_exit == "save")
    args.device_request = device_request(parser, args, leftovers)  # LeRobot's --robot.* / --teleop.*: anything else is an error
    return args


def build_policy(checkpoint: Path | None, robot: SimRobot, defer_pictures: bool = False) -> Policy:
    """The scripted expert (checkpoint None), or an InternVLA-A1 policy from a local checkpoint folder
    trained for this robot's layout. defer_pictures: its foresight pictures are decoded after the
    chunk is handed over (the live policy; replay and evaluation want them in the output)."""
    if checkpoint is None:
        return ScriptedExpert()
    from model.policy import policy_for_robot  # torch loads only when a model is asked for

    return policy_for_robot(checkpoint, robot, defer_pictures=defer_pictures)


def build_live_policy(checkpoint: Path | None, robot: Robot, process: PolicyProcessConfig | None) -> Policy:
    """The policy that drives: build_policy's, in its own process when `process` says how (a model
    only: the scripted expert is too cheap to move). The parent keeps its own copy of the model for
    the foresight judge's frame encoder (latent L2), which the control thread calls."""
    local = build_policy(checkpoint, robot, defer_pictures=True)  # another layout is refused here, before spawning
    if checkpoint is None or process is None:
        return local
    from model.policy import policy_for_layout, robot_layout

    cameras = camera_shapes(robot)
    factory = functools.partial(policy_for_layout, checkpoint, robot_layout(robot), defer_pictures=True)
    return PolicyProcess(factory, cameras, process,
                         encoder=local.frame_encoder(), label=Path(checkpoint).name)


def build_lerobot_policy(folder: Path, robot: Robot, process: PolicyProcessConfig | None) -> Policy:
    """--lerobot-policy: a lerobot-train checkpoint, in its own process when `process` says how. One
    whose features the robot cannot supply is refused here, before any weights load."""
    from robot_io.lerobot_policy import LeRobotPolicy, check_layout, read_layout

    keys = {"state_keys": state_keys(robot), "action_keys": list(robot.action_features), "camera_keys": camera_keys(robot)}
    check_layout(read_layout(folder), folder=folder, **keys)
    factory = functools.partial(LeRobotPolicy, folder, robot_type=robot.name, **keys)
    if process is None:
        return factory()
    cameras = camera_shapes(robot)
    return PolicyProcess(factory, cameras, process, label=Path(folder).name)


def build_checkpoint_policy(folder: Path, robot: Robot, process: PolicyProcessConfig | None) -> Policy:
    """The policy of a checkpoint folder the page's Model panel names: ours or a LeRobot one."""
    from robot_io.lerobot_policy import is_lerobot_checkpoint

    if is_lerobot_checkpoint(folder):
        return build_lerobot_policy(folder, robot, process)
    return build_live_policy(folder, robot, process)


def build_remote_policy(args: argparse.Namespace, robot: Robot) -> Policy:
    """The --policy-url client for this robot's keys, by the URL's scheme: openpi's websocket
    protocol (ws://, wss://) or LeRobot's gRPC policy server (grpc://). It connects now, so a wrong
    URL, token, server or layout stops the start with the reason."""
    scheme = args.policy_url.partition("://")[0]
    if scheme == LEROBOT_SCHEME:
        fields = {name: getattr(args, LEROBOT_SERVER_FLAGS.dest(name)) for name in LEROBOT_SERVER_FLAGS.fields}
        cameras = camera_shapes(robot)
        return LeRobotGrpcPolicy(LeRobotServerConfig(args.policy_url, **fields), state_keys=state_keys(robot),
                                 action_keys=list(robot.action_features), cameras=cameras)
    if scheme not in WEBSOCKET_SCHEMES:
        raise ValueError(f"--policy-url must look like ws://HOST:PORT (or wss://) for an openpi server, or "
                         f"grpc://HOST:PORT for LeRobot's policy server; got {args.policy_url!r}")
    return RemotePolicy(RemotePolicyConfig(args.policy_url, token=args.policy_token), state_keys=state_keys(robot),
                        action_keys=list(robot.action_features), camera_keys=camera_keys(robot))


def start_rerun(args: argparse.Namespace, session: Session) -> tuple[RerunLogger | None, str]:
    """The live Rerun logger, or None and why not: a Rerun problem costs the view, not the console."""
    if not args.rerun:
        return None, "started with --no-rerun"
    try:
        logger = RerunLogger(session, RerunConfig(grpc_port=args.rerun_port, save_dir=args.rerun_dir,
                                                image_every_ticks=args.rerun_image_every))
    except (ValueError, RerunError) as err:
        print(f"warning: no Rerun view: {err}", file=sys.stderr)
        return None, str(err)
    logger.start()
    print(f"Rerun view at /rerun; Rerun's own viewer: rerun {logger.url}", flush=True)
    return logger, ""


def build_replay(args: argparse.Namespace, robot: SimRobot) -> ReplayService:
    """Open-loop replay of the datasets under --replay-root by the --checkpoint model (whatever
    --policy drives the robot): its own copy, loaded at the first replay."""
    config = ReplayServiceConfig(roots=tuple(args.replay_root or [DEFAULT_REPLAY_ROOT]), cache_root=args.replay_cache,
                                 default_cameras=parse_camera_mapping(args.replay_cameras))
    return ReplayService(config, PolicyLayout.for_robot(robot, args.fps), lambda: build_policy(args.checkpoint, robot))


def build_training(args: argparse.Namespace) -> TrainingJobs:
    """Training from the page, on the datasets replay may read and the one being recorded; fine-tunes
    start from --checkpoint or a checkpoint the page may load."""
    roots = [*(args.replay_root or [DEFAULT_REPLAY_ROOT]), *([] if args.no_record else [args.record_to])]
    return TrainingJobs(TrainingConfig(dataset_roots=tuple(roots), checkpoint_roots=tuple(args.checkpoint_root or DEFAULT_CHECKPOINT_ROOTS),
                                       out_root=args.train_out, threads=args.train_threads, niceness=args.train_nice,
                                       default_base=args.checkpoint))


@dataclass
class Console:
    """The console app.py serves, built from its parsed flags by `open_console`: the session and the
    services its page shows beside it. bench.evaluate_console runs the same one with no operator."""

    args: argparse.Namespace
    session: Session
    access: Access
    replay: ReplayService
    checkpoints: CheckpointLoader
    training: TrainingJobs | None = None
    rerun: RerunLogger | None = None
    rerun_off_reason: str = "not started"
    curation: CurationService | None = None  # the dataset panel: the --replay-root datasets and the session's

    def start(self) -> None:
        """Run the control loop, then the Rerun logger that follows it."""
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        self.session.start()
        self.rerun, self.rerun_off_reason = start_rerun(self.args, self.session)

    def app(self) -> FastAPI:
        """The page and its routes, for uvicorn."""
        parts = ConsoleParts(rerun=self.rerun, rerun_off_reason=self.rerun_off_reason, replay=self.replay,
                             checkpoints=self.checkpoints, training=self.training, access=self.access,
                             curation=self.curation)
        return build_app(self.session, parts)

    def close(self) -> None:
        """Stop the Rerun logger, replay and a training, then close the session (its dataset is finalized)."""
        if self.rerun is not None:
            self.rerun.close()
        if self.training is not None:
            self.training.close()
        self.replay.close()
        self.session.close()


def open_console(args: argparse.Namespace, **sim_fields) -> Console:
    """The devices, policy, session and page services `args` (parse_args) ask for, not started yet.
    sim_fields: ConveyorSimConfig fields app.py has no flag for (bench.evaluate_console's belt
    speeds). A bad setting raises ValueError, RecorderError, OSError or RemotePolicyError."""
    # Never open to other machines without logins.
    access = Access(args.users, args.audit_log, required=args.require_login or args.host not in LOOPBACK)
    sim = SimRobot(ConveyorSimConfig(fps=args.fps, image_height=args.image_size, image_width=args.image_size,
                                     foresight=args.setting, **sim_fields))
    devices = build_devices(args.device_request, default_robot=sim)
    robot = devices.robot
    for note in devices.notes:
        print(f"note: {note}", file=sys.stderr)
    replay = build_replay(args, robot)
    checkpoint = args.checkpoint if args.policy == "model" else None
    if args.policy_url:
        policy, label = build_remote_policy(args, robot), args.policy_url
    elif args.lerobot_policy is not None:
        policy, label = build_lerobot_policy(args.lerobot_policy, robot, args.process), str(args.lerobot_policy)
    else:
        policy, label = build_live_policy(checkpoint, robot, args.process), str(checkpoint) if checkpoint else "scripted expert"
    session = Session(robot, policy, args.session, teleoperator=devices.teleoperator, policy_label=label)
    checkpoints = CheckpointLoader(session, robot, args.checkpoint_root or DEFAULT_CHECKPOINT_ROOTS,
                                   lambda path, robot: build_checkpoint_policy(path, robot, args.process))
    curation = CurationService(CurationConfig(replay.config.roots), live=session.recording_worker)
    return Console(args, session, access, replay, checkpoints, build_training(args), curation=curation)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        console = open_console(args)
    except (ValueError, RecorderError, OSError, RemotePolicyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    args.audit_log.parent.mkdir(parents=True, exist_ok=True)
    console.access.audit("console", args.host, "start", {k: str(v) for k, v in vars(args).items() if k not in SECRET_ARGS})
    console.start()
    # uvicorn shuts down gracefully on SIGINT/SIGTERM and then re-raises the signal; these
    # handlers turn that into a normal exit so the session below is always closed.
    signal.signal(signal.SIGTERM, _exit_quietly)
    try:
        print(f"Foresight Console on http://{args.host}:{args.port}", flush=True)
        uvicorn.run(console.app(), host=args.host, port=args.port, log_level="warning")
    except KeyboardInterrupt:
        pass
    finally:
        # A second Ctrl-C must not cut saving the episode or finalizing the dataset short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        console.close()
        print("Session closed: dataset finalized.", flush=True)
    return 0


def _exit_quietly(signum, frame) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main())
