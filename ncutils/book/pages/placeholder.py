"""The page that stands in for a chapter not run yet in a profile: how to run it."""

from __future__ import annotations

__all__ = ["placeholder_page"]


def placeholder_page(title: str, profile: str, number: int) -> str:
    """The Markdown page of chapter ``number`` (titled ``title``) when it has no executed notebook in ``profile``."""
    return (f"# {title}\n\nThis chapter has not been run in the `{profile}` profile yet. Run\n\n"
            f"    python -m ncutils.book --profile {profile} --only {number}\n\n")
