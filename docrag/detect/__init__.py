"""Text-region detection: page image -> quadrilaterals around text lines.

Engines register under a name in :data:`DETECTORS`; :func:`get_detector` builds
one by name and caches it per process (models load once).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Protocol, runtime_checkable

import numpy as np

from docrag.registry import Registry

__all__ = ["Detector", "DETECTORS", "get_detector"]


@runtime_checkable
class Detector(Protocol):
    """Finds text lines on an RGB page image.

    ``detect`` takes an ``(H, W, 3)`` uint8 RGB array and returns an ``(N, 4, 2)``
    float32 array of quads in pixel coordinates, corners ordered top-left,
    top-right, bottom-right, bottom-left, sorted top to bottom.
    """

    name: str

    def detect(self, image: np.ndarray) -> np.ndarray: ...


DETECTORS: Registry[Detector] = Registry("detector")


@lru_cache(maxsize=None)
def get_detector(name: str = "dbnet") -> Detector:
    """The detector called ``name``, built once per process.

    >>> get_detector("dbnet").name
    'dbnet'
    """
    _load_builtin_engines()
    return DETECTORS.create(name)


def _load_builtin_engines() -> None:
    from docrag.detect import dbnet  # noqa: F401  (registers "dbnet")
