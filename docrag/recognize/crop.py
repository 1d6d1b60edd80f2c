"""Perspective crops of detected text quads, shared by the recognizers."""

from __future__ import annotations

import numpy as np

__all__ = ["crop_quad"]


def crop_quad(image: np.ndarray, quad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The quad warped to an upright rectangle, and the 3x3 crop->image transform.

    >>> img = np.zeros((50, 80, 3), np.uint8)
    >>> crop, back = crop_quad(img, np.array([[10, 5], [60, 5], [60, 25], [10, 25]], np.float32))
    >>> crop.shape, np.round(back @ [0, 0, 1]).tolist()
    ((20, 50, 3), [10.0, 5.0, 1.0])
    """
    import cv2

    w = max(2, int(round(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[3] - quad[2])))))
    h = max(2, int(round(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2])))))
    dst = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    m = cv2.getPerspectiveTransform(quad.astype(np.float32), dst)
    crop = cv2.warpPerspective(image, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    return crop, np.linalg.inv(m)
