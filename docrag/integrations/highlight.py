"""Render a hit's page with its boxes drawn: how a person checks a citation.

>>> from docrag.integrations.highlight import render_hit  # doctest: +SKIP
>>> render_hit(index.search("fleet size")[0], "hit.png")  # doctest: +SKIP
PosixPath('hit.png')
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from docrag.io import open_document
from docrag.types import BBox, Hit

__all__ = ["render_hit", "render_boxes"]

EVIDENCE = (220, 30, 30)  # RGB
CHUNK = (240, 170, 0)


def _to_pixels(to_points: np.ndarray, box: BBox) -> np.ndarray:
    """Corners of a page-point box in raster pixels (inverse of the raster's affine)."""
    m = np.vstack([to_points, [0.0, 0.0, 1.0]])
    inv = np.linalg.inv(m)
    x0, y0, x1, y1 = box
    pts = np.array([[x0, y0, 1], [x1, y0, 1], [x1, y1, 1], [x0, y1, 1]], dtype=np.float64)
    return (pts @ inv.T)[:, :2]


def render_boxes(source: str | Path, page: int, boxes: list[tuple[BBox, tuple[int, int, int], int]],
                 out: str | Path, dpi: int = 100) -> Path:
    """Write page ``page`` of ``source`` as PNG with ``(box, rgb, thickness)`` drawn on it."""
    import cv2

    with open_document(source) as doc:
        raster = doc.page(page).render(dpi)
    img = cv2.cvtColor(raster.image, cv2.COLOR_RGB2BGR)
    for box, rgb, thickness in boxes:
        pts = np.round(_to_pixels(raster.to_points, box)).astype(np.int32)
        cv2.polylines(img, [pts], True, rgb[::-1], thickness, lineType=cv2.LINE_AA)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ok, png = cv2.imencode(".png", img)
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".png")
    with os.fdopen(fd, "wb") as fh:
        fh.write(png.tobytes())
    os.replace(tmp, out)
    return out


def render_hit(hit: Hit, out: str | Path, dpi: int = 100) -> Path:
    """The hit's page with its chunk box (amber) and evidence box (red)."""
    boxes = []
    if hit.chunk_bbox and hit.chunk_bbox != hit.bbox:
        boxes.append((hit.chunk_bbox, CHUNK, 1))
    boxes.append((hit.bbox, EVIDENCE, 3))
    return render_boxes(hit.path or hit.source, hit.page, boxes, out, dpi)
