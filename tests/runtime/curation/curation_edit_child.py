"""Child process for test_curation_kill.py: edits one dataset forever through CurationService,
deleting its last episode and undoing that in turn, appending one line per event to a log.

    python curation_edit_child.py DATASET LOG
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from runtime.curation.service import CurationConfig, CurationService


def note(log: Path, line: str) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, (line + "\n").encode())
    os.close(fd)


def main() -> None:
    dataset, log = Path(sys.argv[1]), Path(sys.argv[2])
    service = CurationService(CurationConfig((dataset.parent,)))
    import lerobot.datasets.dataset_tools  # noqa: F401 - imported before "ready", so kills land in edits
    note(log, "ready")
    for edit in range(10**6):
        if edit % 2 == 0:
            service.delete(dataset, [len(service.table(dataset).episodes) - 1])
        else:
            service.undo(dataset)
        note(log, f"done {edit}")


if __name__ == "__main__":
    main()
