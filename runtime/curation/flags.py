"""Episode flags ("look at this one again"): a curation note LeRobot has no field for, kept in
`meta/curation_flags.json` inside the dataset. The recorder never touches the file, so flags may
change while it records. Edits that renumber episodes carry the flags over (`remap`)."""

from __future__ import annotations

import json
from pathlib import Path

from robot_io.datasets.journal import write_atomically

FLAGS_PATH = "meta/curation_flags.json"


def read_flags(root: Path) -> set[int]:
    path = Path(root) / FLAGS_PATH
    try:
        return {int(i) for i in json.loads(path.read_text())["flagged"]}
    except FileNotFoundError:
        return set()
    except (OSError, ValueError, KeyError, TypeError):  # written atomically: unreadable means hand-edited
        return set()


def write_flags(root: Path, flagged: set[int]) -> None:
    write_atomically(Path(root) / FLAGS_PATH, json.dumps({"flagged": sorted(flagged)}).encode())


def remap(flagged: set[int], mapping: dict[int, int]) -> set[int]:
    """The flags after an edit that moved episode `old` to `mapping[old]` (dropped when absent)."""
    return {mapping[i] for i in flagged if i in mapping}
