"""Text recognition: crops of detected lines -> text and confidence.

Engines register under a name in :data:`RECOGNIZERS`; :func:`get_recognizer`
builds one by name and caches it per process.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol, runtime_checkable

import numpy as np

from docrag.registry import Registry

__all__ = ["Recognized", "Recognizer", "RECOGNIZERS", "get_recognizer"]


@dataclass
class Recognized:
    """The text read in one quad, in pixel coordinates of the image given.

    ``words`` holds ``(text, (x0, y0, x1, y1))`` per word when the engine can
    place words (pixel coordinates, axis-aligned); empty otherwise.
    """

    text: str
    confidence: float
    quad: np.ndarray
    words: list[tuple[str, tuple[float, float, float, float]]]


@runtime_checkable
class Recognizer(Protocol):
    """Reads the text inside each quad of an RGB page image.

    ``recognize(image, quads)`` takes an ``(H, W, 3)`` uint8 RGB array and an
    ``(N, 4, 2)`` float32 quad array (see :class:`docrag.detect.Detector`) and
    returns one :class:`Recognized` per quad, in the same order.
    """

    name: str

    def recognize(self, image: np.ndarray, quads: np.ndarray) -> list[Recognized]: ...


RECOGNIZERS: Registry[Recognizer] = Registry("recognizer")


@lru_cache(maxsize=None)
def get_recognizer(name: str = "ppocr") -> Recognizer:
    """The recognizer called ``name``, built once per process."""
    _load_builtin_engines()
    return RECOGNIZERS.create(name)


def _load_builtin_engines() -> None:
    from docrag.recognize import ppocr  # noqa: F401  (registers "ppocr")
