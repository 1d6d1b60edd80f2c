"""The docrag error hierarchy.

Every error a user can cause is a :class:`DocragError`; the message names the
file (and page) and says what to do. Anything else escaping docrag is a bug.
"""

from __future__ import annotations

__all__ = ["DocragError", "LoadError", "ModelError", "StoreError", "ConfigError"]


class DocragError(Exception):
    """Base class of every error docrag raises on purpose."""


class LoadError(DocragError):
    """A file cannot be read: missing, empty, not a document, encrypted or corrupt.

    Attributes:
        path: The file as the user gave it.
        page: 1-based page number when one page is at fault, else ``None``.
    """

    def __init__(self, path: str, reason: str, *, page: int | None = None, hint: str = "") -> None:
        self.path = str(path)
        self.page = page
        self.reason = reason
        self.hint = hint
        where = f"{self.path}" + (f" (page {page})" if page is not None else "")
        msg = f"{where}: {reason}"
        if hint:
            msg += f"; {hint}"
        super().__init__(msg)


class ModelError(DocragError):
    """A model cannot be found, loaded or run."""


class StoreError(DocragError):
    """The index directory is missing, locked, or inconsistent with the options."""


class ConfigError(DocragError):
    """An option has a bad value, e.g. an unknown engine name."""
