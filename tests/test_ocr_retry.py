"""The closer look of the OCR engine (recognize/engine.py): where it looks, and that it reads in one call."""

from __future__ import annotations

import cv2
import numpy as np

from docrag.recognize import Recognized
from docrag.recognize.engine import _unread_ink, keep_and_retry

SIDE = 1024  # the first pass's long side, as DBNet's limit_side_len


def _page_with_lines(*rows: tuple[int, float]) -> tuple[np.ndarray, list[np.ndarray]]:
    """A 3000 x 2000 white page with a line of type at each (y, scale); the tight box of each line's ink."""
    image = np.full((3000, 2000, 3), 255, np.uint8)
    boxes = []
    for y, scale in rows:
        cv2.putText(image, "the quick brown fox jumps over", (100, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0),
                    max(1, round(2 * scale)))
        ys, xs = np.nonzero(image[max(0, y - 200):y + 60, :, 0] < 128)
        ys = ys + max(0, y - 200)
        boxes.append(np.array([[xs.min(), ys.min()], [xs.max(), ys.min()], [xs.max(), ys.max()], [xs.min(), ys.max()]],
                              np.float32))
    return image, boxes


def test_ink_at_the_edge_of_a_found_line_is_its_own() -> None:
    image, (box,) = _page_with_lines((500, 3.0))
    cut = box.copy()
    cut[2:, 1] -= 22  # the detector's box ends above the descenders and the foot of the letters
    assert _unread_ink(image, cut[None], SIDE) == []


def test_small_type_far_from_every_found_line_is_looked_at() -> None:
    image, (big, small) = _page_with_lines((500, 3.0), (2000, 0.8))
    (x0, y0, x1, y1), = _unread_ink(image, big[None], SIDE)
    assert y0 <= small[:, 1].min() and y1 >= small[:, 1].max() and x0 <= small[:, 0].min() + 5


class _CountingRecognizer:
    """Reads every quad as "word" (confidence 0.9) and counts its calls."""

    name = "counting"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def recognize(self, image: np.ndarray, quads: np.ndarray) -> list[Recognized]:
        self.calls.append(len(quads))
        return [Recognized(text="word", confidence=0.9, quad=q.copy(), words=[]) for q in quads]


class _GridDetector:
    """Finds two lines in any region it is given; its first pass runs at ``limit_side_len``."""

    limit_side_len = SIDE

    def detect(self, image: np.ndarray, limit_side_len: int | None = None) -> np.ndarray:
        h, w = image.shape[:2]
        return np.array([[[0, 0], [w / 2, 0], [w / 2, h / 3], [0, h / 3]],
                         [[0, h / 2], [w / 2, h / 2], [w / 2, h], [0, h]]], np.float32)


def test_every_closer_look_of_a_page_is_read_in_one_call() -> None:
    image, boxes = _page_with_lines((500, 3.0), (1000, 3.0), (1500, 3.0))
    quads = np.stack(boxes)
    bad = [Recognized(text="?", confidence=0.1, quad=q, words=[]) for q in quads]  # every line read badly
    recognizer = _CountingRecognizer()
    out = keep_and_retry(image, quads, bad, _GridDetector(), recognizer)
    assert recognizer.calls == [6]  # three boxes looked at closer, two lines found in each, one read
    assert len(out) == 6 and all(r.text == "word" for r in out)
    for r, box in zip(out[::2], boxes):  # quads come back in page pixels, inside the box they were found in
        assert r.quad[:, 1].min() >= box[:, 1].min() - 60 and r.quad[:, 1].max() <= box[:, 1].max() + 60
