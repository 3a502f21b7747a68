"""Renaming a device's keys to the model's slots: "head=front,wrist=gripper" maps model name ->
device name. Names left out keep their own name.

    mapping = NameMapping.parse("head=front,wrist=gripper", "camera")
    mapping.check(robot_cameras)          # ValueError naming both lists when it names a camera the robot lacks
    mapping.to_model({"front": ...})      # -> {"head": ...}
    mapping.to_device({"head": ...})      # -> {"front": ...}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


def parse_name_pairs(text: str, what: str, form: str = "model_name=device_name") -> dict[str, str]:
    """"a=b, c=d" -> {"a": "b", "c": "d"}; "" -> {}. ValueError naming `what` on a malformed pair or
    a left side given twice."""
    pairs: dict[str, str] = {}
    for pair in filter(None, (part.strip() for part in str(text).split(","))):
        left, sep, right = (s.strip() for s in pair.partition("="))
        if not sep or not left or not right:
            raise ValueError(f"{what} mapping: expected {form} pairs separated by commas, got {pair!r}")
        if left in pairs:
            raise ValueError(f"{what} mapping: {left!r} is mapped twice")
        pairs[left] = right
    return pairs


@dataclass(frozen=True)
class NameMapping:
    what: str  # "camera" or "joint", for messages
    model_to_device: Mapping[str, str] = field(default_factory=dict)
    _device_to_model: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        devices = list(self.model_to_device.values())
        twice = sorted({name for name in devices if devices.count(name) > 1})
        if twice:
            raise ValueError(f"{self.what} mapping: {twice} each stand for more than one model {self.what}")
        object.__setattr__(self, "_device_to_model", {device: model for model, device in self.model_to_device.items()})

    @classmethod
    def parse(cls, text: str, what: str) -> NameMapping:
        return cls(what, parse_name_pairs(text, what, f"model_{what}=robot_{what}"))

    def check(self, device_names: Iterable[str], device: str = "robot") -> None:
        """Refuse a mapping that names something the device lacks, or that renames one of its names
        onto another it keeps; both name lists are in the message."""
        names = list(device_names)
        lists = f"the {device}'s {self.what}s are {names}, the mapping is {dict(self.model_to_device)}"
        unknown = [name for name in self.model_to_device.values() if name not in names]
        if unknown:
            raise ValueError(f"the {self.what} mapping names {unknown}, which the {device} lacks: {lists}")
        renamed = set(self.model_to_device.values())
        clash = [model for model in self.model_to_device if model in names and model not in renamed]
        if clash:
            raise ValueError(f"the {self.what} mapping renames onto {clash}, which the {device} already has: {lists}")

    def model_name(self, device_name: str) -> str:
        return self._device_to_model.get(device_name, device_name)

    def device_name(self, model_name: str) -> str:
        return self.model_to_device.get(model_name, model_name)

    def to_model(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {self.model_name(key): value for key, value in values.items()}

    def to_device(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {self.device_name(key): value for key, value in values.items()}
