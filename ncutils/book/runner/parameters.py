"""What the runner passes each chapter notebook: the profile, the settings the run changes, and the run's plumbing.

The settings themselves are declared, typed and checked in :mod:`ncutils.book.settings`; this module only
packs them for papermill. A chapter's notebook receives three parameters (see :mod:`ncutils.book.chapter`):
``profile``, ``changes`` (only the settings that differ from the profile's: the parameter file's and a
replicate's seeds) and ``runner`` (:class:`ncutils.book.settings.Run`).
"""

from __future__ import annotations

from typing import Any

from ncutils.book import settings as settings_

__all__ = ["chapter_parameters"]


def chapter_parameters(number: int, loaded: settings_.Loaded, run: dict[str, Any], replicate: int = 0
                       ) -> tuple[dict[str, Any], settings_.Common]:
    """``(injected, settings)``: what papermill injects into chapter ``number`` and the settings it then runs
    with, for the parameter file or profile ``loaded`` and replicate ``replicate`` (its seeds moved by
    :func:`ncutils.book.settings.replicate`)."""
    effective = settings_.chapter_settings(number, loaded.values, replicate=replicate)
    changes = {k: v for k, (v, _) in settings_.changed(effective).items()}
    injected = {"profile": loaded.profile, "changes": changes, "runner": {**run, "replicate": replicate}}
    return injected, effective
