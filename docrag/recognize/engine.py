"""Detection then recognition on one page image.

>>> from docrag.detect import get_detector
>>> from docrag.recognize import get_recognizer
>>> blank = np.full((64, 64, 3), 255, np.uint8)
>>> ocr_image(blank, get_detector("dbnet"), get_recognizer("ppocr"))
[]
"""

from __future__ import annotations

import numpy as np

from docrag.detect import Detector
from docrag.recognize import Recognized, Recognizer

__all__ = ["ocr_image"]


def ocr_image(
    image: np.ndarray,
    detector: Detector,
    recognizer: Recognizer,
    min_confidence: float = 0.5,
) -> list[Recognized]:
    """Text lines of an ``(H, W, 3)`` uint8 RGB ``image``, in the detector's order.

    Lines that read as empty or below ``min_confidence`` are dropped: they are
    mostly specks, rules and picture fragments the detector took for text.
    """
    quads = detector.detect(image)
    if len(quads) == 0:
        return []
    lines = recognizer.recognize(image, quads)
    return [r for r in lines if r.text.strip() and r.confidence >= min_confidence]
