"""Command-line flags generated from config dataclasses, so each default is written once.

A config dataclass documents each field with a comment above it or at the end of its line (as
LeRobot's device configs do); `add_config_flags` turns the fields a command exposes into flags
with that comment as their help and the field's default, and `config_from_flags` builds the
config back from the parsed flags, turning the dataclass's own validation error into the
command's usage error. A command may rename a flag (`--blend` for BlendConfig.mode).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import io
import textwrap
import tokenize
import types
import typing
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

NONE_WORDS = ("none", "")  # what an optional field's flag reads as None


@dataclasses.dataclass(frozen=True)
class FlagGroup:
    """Which fields of a config class become flags, and under what names."""

    config: type  # a dataclass
    fields: tuple[str, ...]  # the fields exposed, in the order the help lists them
    names: Mapping[str, str] = dataclasses.field(default_factory=dict)  # field -> flag name without "--"
    prefix: str = ""  # prepended to every flag name that `names` does not give (e.g. "rerun-")

    def flag(self, field: str) -> str:
        return self.names.get(field, self.prefix + field.replace("_", "-"))

    def dest(self, field: str) -> str:
        return self.flag(field).replace("-", "_")


def add_config_flags(parser: argparse.ArgumentParser, group: FlagGroup, **defaults: Any) -> None:
    """One flag per field of `group`; `defaults` replace a field's default for this command only."""
    fields = {f.name: f for f in dataclasses.fields(group.config)}
    hints = typing.get_type_hints(group.config)
    helps = field_comments(group.config)
    for name in group.fields:
        if name not in fields:
            raise ValueError(f"{group.config.__name__} has no field {name!r}")
        default = defaults.get(name, _default(fields[name]))
        kind, optional = _scalar_type(hints[name])
        flag = f"--{group.flag(name)}"
        if kind is bool and not optional:
            parser.add_argument(flag, dest=group.dest(name), action=argparse.BooleanOptionalAction, default=default,
                                help=helps.get(name, ""))
        else:
            parser.add_argument(flag, dest=group.dest(name), type=_parser_for(kind, optional), default=default,
                                metavar=group.dest(name).upper(), help=f"{helps.get(name, '')} (default: {default})")


def config_from_flags(parser: argparse.ArgumentParser, args: argparse.Namespace, group: FlagGroup, **fixed: Any) -> Any:
    """The config of `group`'s parsed flags plus `fixed` fields that are not on the command line;
    a value the config refuses stops the command with the config's own message."""
    values = {name: getattr(args, group.dest(name)) for name in group.fields}
    try:
        return group.config(**values, **fixed)
    except (TypeError, ValueError) as err:
        parser.error(str(err))


@cache
def field_comments(config: type) -> dict[str, str]:
    """field name -> its comment: the comment lines right above it, then the one at the end of its line."""
    source = textwrap.dedent(inspect.getsource(config))
    lines = source.splitlines()
    comments = {token.start[0]: token.string.lstrip("#").strip()
                for token in tokenize.generate_tokens(io.StringIO(source).readline) if token.type == tokenize.COMMENT}
    found: dict[str, str] = {}
    for node in ast.parse(source).body[0].body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        parts = []
        line = node.lineno - 1  # 1-based line numbers: the line above the field
        while line in comments and lines[line - 1].lstrip().startswith("#"):
            parts.insert(0, comments[line])
            line -= 1
        if node.end_lineno in comments and not lines[node.end_lineno - 1].lstrip().startswith("#"):
            parts.append(comments[node.end_lineno])
        found[node.target.id] = " ".join(parts)
    return found


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    raise ValueError(f"field {field.name!r} has no default: a command must give it as `fixed`")


def _scalar_type(hint: Any) -> tuple[type, bool]:
    """(the scalar type, whether None is allowed) of a field's annotation: `float | None` -> (float, True)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        (kind,) = [a for a in args if a is not type(None)]
        return kind, True
    return hint, False


def _parser_for(kind: type, optional: bool):
    if kind not in (int, float, str, Path):
        raise TypeError(f"no command-line form for fields of type {kind!r}")

    def parse(text: str) -> Any:
        if optional and text.strip().lower() in NONE_WORDS:
            return None
        try:
            return kind(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}") from err

    parse.__name__ = kind.__name__  # argparse names the type in its error messages
    return parse
