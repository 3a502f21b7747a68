"""Where the shipped model lives: the tiny InternVLA-A1 we trained on the conveyor sim, which the
console and model.evaluate use by default (torch-free, so reading the path loads nothing)."""

from pathlib import Path

SHIPPED_CHECKPOINT = Path(__file__).parent / "weights" / "tiny_conveyor"
