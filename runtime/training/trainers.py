"""The trainers the console can start, as command lines, and how each one's progress is read.

- `finetune`: our model (`python -m model.finetune`) from a checkpoint; progress and checkpoints
  come from the run's OUT/progress.jsonl (model/train.py), one JSON object per line.
- `lerobot`: a stock LeRobot policy (`lerobot-train`); it writes no structured log, so progress is
  parsed from its log lines (`step:… loss:…`, one every --log_freq steps, which we choose) and its
  progress bar (`n/total`). Its result is OUT/checkpoints/last/pretrained_model.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
import sys
from dataclasses import dataclass, field
from pathlib import Path

from lerobot.utils.constants import CHECKPOINTS_DIR, LAST_CHECKPOINT_LINK, PRETRAINED_MODEL_DIR

from model.train import PROGRESS_FILE

KINDS = ("finetune", "lerobot")
# Stock LeRobot policies offered, as lerobot-train arguments. No network: ACT's ResNet starts
# untrained instead of from torchvision's ImageNet weights. `act-tiny` trains in seconds on a CPU.
LEROBOT_POLICIES = {
    "act": ["--policy.type=act", "--policy.pretrained_backbone_weights=null"],
    "act-tiny": ["--policy.type=act", "--policy.pretrained_backbone_weights=null", "--policy.dim_model=64",
                 "--policy.n_heads=4", "--policy.dim_feedforward=128", "--policy.n_encoder_layers=1",
                 "--policy.n_decoder_layers=1", "--policy.latent_dim=8", "--policy.chunk_size=10",
                 "--policy.n_action_steps=10"],
}
LEROBOT_OUTPUT = "lerobot"  # lerobot-train's --output_dir inside the job folder: it must not exist yet
LOSS_POINTS = 200  # lerobot-train logs about this many losses per run (its --log_freq follows)
LEROBOT_LOG = re.compile(r"\bstep:\S+ .*?\bloss:([-+0-9.eE]+|nan|inf)")
LEROBOT_BAR = re.compile(r"Training:.*?\|\s*(\d+)/(\d+)\s*\[")


@dataclass(frozen=True)
class TrainRequest:
    kind: str  # one of KINDS
    dataset: Path
    steps: int
    batch_size: int
    base: Path | None = None  # finetune: the checkpoint to start from
    policy: str = "act"  # lerobot: one of LEROBOT_POLICIES

    def __post_init__(self) -> None:
        problems = []
        if self.kind not in KINDS:
            problems.append(f"unknown trainer {self.kind!r}; known: {', '.join(KINDS)}")
        if self.steps < 1 or self.batch_size < 1:
            problems.append(f"steps and batch size must be >= 1, got {self.steps} and {self.batch_size}")
        if self.kind == "finetune" and self.base is None:
            problems.append("fine-tuning needs a checkpoint to start from")
        if self.kind == "lerobot" and self.policy not in LEROBOT_POLICIES:
            problems.append(f"unknown LeRobot policy {self.policy!r}; offered: {', '.join(LEROBOT_POLICIES)}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def label(self) -> str:
        what = "fine-tune of our model" if self.kind == "finetune" else f"lerobot-train {self.policy}"
        return f"{what} on {self.dataset.name}, {self.steps} steps"


def command(request: TrainRequest, folder: Path, threads: int) -> list[str]:
    """The trainer's command line for a run whose files go to `folder` (which exists)."""
    if request.kind == "finetune":
        return [sys.executable, "-m", "model.finetune", "--dataset", str(request.dataset), "--checkpoint", str(request.base),
                "--out", str(folder), "--steps", str(request.steps), "--batch-size", str(request.batch_size),
                "--threads", str(threads)]
    return [str(Path(sys.executable).with_name("lerobot-train")),  # beside this interpreter, in the same virtualenv
            f"--dataset.repo_id=local/{request.dataset.name}", f"--dataset.root={request.dataset}",
            *LEROBOT_POLICIES[request.policy], "--policy.push_to_hub=false", f"--steps={request.steps}",
            f"--batch_size={request.batch_size}", f"--log_freq={lerobot_log_every(request.steps)}",
            f"--save_freq={request.steps}", "--num_workers=0", "--wandb.enable=false",
            f"--output_dir={folder / LEROBOT_OUTPUT}"]


def lerobot_log_every(steps: int) -> int:
    return max(1, steps // LOSS_POINTS)


@dataclass
class Progress:
    """What a run's output said so far."""

    step: int = 0
    total: int = 0
    points: list[tuple[int, float]] = field(default_factory=list)  # (step, loss)
    checkpoint: str = ""  # the latest checkpoint written ("" before the first)


class ProgressReader(ABC):
    """Reads what a trainer appended to one file since the last call (whole lines only)."""

    def __init__(self, path: Path, total: int) -> None:
        self.path = path
        self.progress = Progress(total=total)
        self._offset = 0
        self._partial = ""

    def read(self) -> Progress:
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return self.progress
        self._offset += len(data)
        text = self._partial + data.decode("utf-8", errors="replace")
        *lines, self._partial = re.split(r"[\r\n]", text)  # tqdm ends its updates with \r
        for line in lines:
            if line.strip():
                self.parse(line)
        return self.progress

    @abstractmethod
    def parse(self, line: str) -> None:
        """Take one whole line of the file into self.progress."""


class FinetuneProgress(ProgressReader):
    """model.train's OUT/progress.jsonl."""

    def __init__(self, folder: Path, total: int) -> None:
        super().__init__(folder / PROGRESS_FILE, total)

    def parse(self, line: str) -> None:
        record = json.loads(line)
        p = self.progress
        p.step = max(p.step, record["step"])
        if "checkpoint" in record:
            p.checkpoint = record["checkpoint"]
        else:
            p.total = record["steps"]
            p.points.append((record["step"], record["loss"]))


class LerobotProgress(ProgressReader):
    """lerobot-train's log (its stderr): the k-th `loss:` line is step k * --log_freq."""

    def __init__(self, log: Path, total: int) -> None:
        super().__init__(log, total)
        self._log_every = lerobot_log_every(total)

    def parse(self, line: str) -> None:
        p = self.progress
        if found := LEROBOT_LOG.search(line):
            step = (len(p.points) + 1) * self._log_every
            p.points.append((step, float(found.group(1))))
            p.step = max(p.step, step)
        for done, total in LEROBOT_BAR.findall(line):
            p.step, p.total = max(p.step, int(done)), int(total)


def lerobot_result(folder: Path) -> Path:
    """The policy folder `app.py --lerobot-policy` reads, once lerobot-train has finished in `folder`."""
    return folder / LEROBOT_OUTPUT / CHECKPOINTS_DIR / LAST_CHECKPOINT_LINK / PRETRAINED_MODEL_DIR
