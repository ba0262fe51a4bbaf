"""Output folders a failed command leaves as it found them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def removed_if_left_empty(folder: Path) -> Iterator[None]:
    """Run the block; if it fails and ``folder`` did not exist before it and is empty
    now (made by the block, nothing written), remove the folder."""
    created = not folder.exists()
    try:
        yield
    except BaseException:
        if created and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        raise
