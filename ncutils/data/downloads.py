"""Downloads that leave nothing behind when they fail.

A download that stops half-way (no network, a server down, an interrupted run) must not leave a
partial file or an empty folder that later reads as a dataset. :func:`removing_leftovers` notes
what exists under the data root before a download and, when the download raises, removes every
file and folder it added: the dataset's folder, the archives torchvision fetches next to it, and the
data root itself if the download created it. What existed before is left alone.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = ["DownloadError", "archive_names", "removing_leftovers"]


class DownloadError(RuntimeError):
    """A download failed (or gave files that do not pass the presence check); the message says why and what to do."""


def archive_names(tv_class: type) -> set[str]:
    """File names of the archives a torchvision dataset class downloads into the data root (from its URLs)."""
    names = set()
    for cls in tv_class.__mro__:
        for key, value in vars(cls).items():
            if isinstance(value, str) and value.startswith(("http://", "https://")):
                names.add(value.rstrip("/").rsplit("/", 1)[-1])
            elif key == "filename" and isinstance(value, str):
                names.add(value)
    return names


def _existing(path: Path) -> set[Path]:
    """``path`` and everything under it that exists (symbolic links are not followed)."""
    if not os.path.lexists(path):
        return set()
    found = {path}
    if path.is_dir() and not path.is_symlink():
        for folder, dirs, files in os.walk(path):
            found.update(Path(folder) / name for name in dirs + files)
    return found


def _first_missing_ancestor(path: Path) -> Path | None:
    """The outermost folder of ``path`` (itself included) that does not exist yet, or None."""
    missing = None
    for folder in (path, *path.parents):
        if os.path.lexists(folder):
            return missing
        missing = folder
    return missing


def _remove_new(paths: set[Path], before: set[Path]) -> list[Path]:
    """Remove the paths that are not in ``before``: files first, then folders once empty, deepest first."""
    removed = []
    for path in sorted(paths - before, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):  # a folder that still holds something is kept
            if path.is_dir() and not path.is_symlink():
                path.rmdir()
            else:
                path.unlink()
            removed.append(path)
    return removed


@contextlib.contextmanager
def removing_leftovers(root: Path, names: Iterable[str]) -> Iterator[list[Path]]:
    """Remove what a failing download added under ``root / name`` for each of ``names`` (and ``root`` if new).

    Yields the list that receives the removed paths, so that a caller can report them. Files and
    folders that existed before are never removed; a folder the download created is removed once
    empty. The exception (any, including ``KeyboardInterrupt``) propagates.
    """
    names = sorted(set(names))
    created = _first_missing_ancestor(root)
    before = set().union(*(_existing(root / name) for name in names))
    removed: list[Path] = []
    try:
        yield removed
    except BaseException:
        after = set().union(*(_existing(root / name) for name in names))
        removed += _remove_new(after, before)
        if created is not None:  # the data root and the folders above it that the download created
            removed += _remove_new({root, *(p for p in root.parents if created in (p, *p.parents))}, set())
        raise
