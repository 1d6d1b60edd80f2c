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

__all__ = ["Recognized", "Recognizer", "PageReader", "RECOGNIZERS", "get_recognizer"]


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


@runtime_checkable
class PageReader(Protocol):
    """A recognizer that can also read a whole page without a detector.

    ``read_page(image)`` returns the page's lines as :class:`Recognized` with
    pixel quads (Florence-2 ``<OCR_WITH_REGION>``, Tesseract's own layout).
    The pipeline uses it when the engine's ``page_mode`` attribute is true.
    """

    name: str
    page_mode: bool

    def read_page(self, image: np.ndarray) -> list[Recognized]: ...


RECOGNIZERS: Registry[Recognizer] = Registry("recognizer")


def get_recognizer(name: str = "ppocr", model: str | None = None, lang: str | None = None) -> Recognizer:
    """The recognizer called ``name``, built once per process.

    ``model`` (a hub id or a local directory) goes to engines that load a
    model by name (``florence2``; a tessdata dir for ``tesseract``); ``lang``
    to ``tesseract``. Options left as ``None`` are not passed.

    >>> get_recognizer("ppocr") is get_recognizer("ppocr", None, None)
    True
    """
    # One cache key however the arguments are spelled: a second instance would load the model again.
    return _cached_recognizer(name, model, lang)


@lru_cache(maxsize=None)
def _cached_recognizer(name: str, model: str | None, lang: str | None) -> Recognizer:
    _load_builtin_engines()
    kwargs = {k: v for k, v in (("model", model), ("lang", lang)) if v is not None}
    return RECOGNIZERS.create(name, **kwargs)


def _load_builtin_engines() -> None:
    import importlib

    for module in ("ppocr", "florence2", "tesseract"):
        try:
            importlib.import_module(f"docrag.recognize.{module}")  # registers the engine
        except ModuleNotFoundError as exc:
            if exc.name != f"docrag.recognize.{module}":
                raise
