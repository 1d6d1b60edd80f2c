"""Tesseract OCR through its command-line binary (no ``pytesseract``).

The image goes to ``tesseract stdin stdout ... tsv`` as PNG on stdin and the
TSV rows (block / paragraph / line / word, with a confidence per word) come
back on stdout. Importing this module runs nothing; the binary is looked up
when the engine is built, and a missing binary or language pack raises
:class:`~docrag.errors.ModelError` saying what to install.

Two ways to read:

* ``read_page(image)`` (``page_mode``): Tesseract's own layout analysis on the
  whole page (``--psm 3``), one :class:`Recognized` per text line.
* ``recognize(image, quads)``: each quad is cut out and straightened, the
  crops are stacked into one tall image with white gaps and read in a single
  call (``--psm 6``), and the words are dealt back to their crops by position.

from docrag.recognize import RECOGNIZERS
>>> import docrag.recognize.tesseract
>>> "tesseract" in RECOGNIZERS.names()
True
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

import numpy as np

from docrag.config import subprocess_env
from docrag.errors import ModelError
from docrag.recognize import RECOGNIZERS, Recognized
from docrag.recognize.crop import crop_quad

__all__ = ["TesseractRecognizer", "parse_tsv", "INSTALL_HINT"]

INSTALL_HINT = (
    "tesseract is not installed: apt-get install tesseract-ocr (Debian/Ubuntu) or brew install tesseract; "
    "add language packs such as tesseract-ocr-fra for --lang fra"
)
# Crops are stacked with this much white around and between them, in units of
# the crop height (at least _MIN_GAP pixels): enough that Tesseract never
# merges two crops into one line.
_GAP = 0.8
_MIN_GAP = 16


@dataclass
class _Word:
    """One TSV word row: the line it belongs to, its box and confidence."""

    line: tuple[int, int, int]
    box: tuple[int, int, int, int]  # x0, y0, x1, y1
    conf: float
    text: str


def parse_tsv(tsv: str) -> list[_Word]:
    """The word rows (level 5, non-empty text) of Tesseract's TSV output.

    >>> rows = parse_tsv("level\\tpage_num\\tblock_num\\tpar_num\\tline_num\\tword_num\\tleft\\ttop\\twidth"
    ...                  "\\theight\\tconf\\ttext\\n5\\t1\\t1\\t1\\t1\\t1\\t10\\t20\\t30\\t12\\t91.5\\tHello")
    >>> rows[0].text, rows[0].box, rows[0].conf
    ('Hello', (10, 20, 40, 32), 91.5)
    """
    words = []
    for row in tsv.splitlines()[1:]:
        cols = row.split("\t")
        if len(cols) < 12 or cols[0] != "5":
            continue
        text = "\t".join(cols[11:]).strip()
        if not text:
            continue
        block, par, line = (int(c) for c in cols[2:5])
        x, y, w, h = (int(c) for c in cols[6:10])
        words.append(_Word((block, par, line), (x, y, x + w, y + h), float(cols[10]), text))
    return words


class TesseractRecognizer:
    """Reads text with the ``tesseract`` binary; see :class:`docrag.recognize.Recognizer`.

    Args:
        lang: Tesseract language codes joined by ``+``, e.g. ``"eng+fra+deu"``.
        tessdata: A directory of ``*.traineddata`` files (``--tessdata-dir``);
            the binary's own when None.
        page_psm: Page segmentation mode of :meth:`read_page` (3: automatic
            layout, right for columns; 6: one uniform block).
        timeout: Seconds one tesseract call may take.
        binary: The executable's name or path.

    Raises:
        ModelError: The binary is missing, or a language pack is not installed.

    >>> rec = TesseractRecognizer("eng")  # doctest: +SKIP
    >>> rec.read_page(np.full((64, 64, 3), 255, np.uint8))  # doctest: +SKIP
    []
    """

    name = "tesseract"
    page_mode = True

    def __init__(
        self,
        lang: str = "eng",
        tessdata: str | None = None,
        page_psm: int = 3,
        timeout: float = 300.0,
        binary: str = "tesseract",
    ) -> None:
        self.lang = lang
        self.tessdata = tessdata
        self.page_psm = int(page_psm)
        self.timeout = float(timeout)
        found = shutil.which(binary)
        if found is None:
            raise ModelError(INSTALL_HINT)
        self.binary = found
        self._check_languages()

    def _check_languages(self) -> None:
        """Raise ModelError naming the package of any language not installed."""
        cmd = [self.binary, "--list-langs"] + (["--tessdata-dir", self.tessdata] if self.tessdata else [])
        out = self._call(cmd, b"").decode("utf-8", "replace")
        have = {ln.strip() for ln in out.splitlines()[1:] if ln.strip()}
        missing = [code for code in self.lang.split("+") if code and code not in have]
        if missing:
            packs = " ".join("tesseract-ocr-" + c.lower().replace("_", "-") for c in missing)
            where = f" in {self.tessdata}" if self.tessdata else ""
            raise ModelError(
                f"tesseract language pack(s) {', '.join(missing)} not installed{where}: "
                f"apt-get install {packs} (Debian/Ubuntu) or brew install tesseract-lang; "
                f"installed: {', '.join(sorted(have)) or 'none'}"
            )

    def _call(self, cmd: list[str], data: bytes) -> bytes:
        # One thread per call: tesseract's OpenMP threads fight the page workers
        # for cores and are slower than a single thread on small images.
        env = subprocess_env(OMP_THREAD_LIMIT="1")
        try:
            done = subprocess.run(cmd, input=data, capture_output=True, timeout=self.timeout, env=env, check=False)
        except FileNotFoundError:
            raise ModelError(INSTALL_HINT) from None
        except subprocess.TimeoutExpired:
            raise ModelError(f"tesseract took longer than {self.timeout:.0f} s; raise timeout= or lower the dpi") from None
        if done.returncode != 0:
            err = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise ModelError(f"tesseract failed (exit {done.returncode}): {' / '.join(err[-3:])}")
        return done.stdout

    def _tsv(self, image: np.ndarray, psm: int) -> list[_Word]:
        import cv2

        ok, png = cv2.imencode(".png", np.ascontiguousarray(image[:, :, ::-1]))
        if not ok:
            raise ModelError("could not PNG-encode the image for tesseract")
        cmd = [self.binary, "stdin", "stdout", "--psm", str(psm), "-l", self.lang]
        if self.tessdata:
            cmd += ["--tessdata-dir", self.tessdata]
        return parse_tsv(self._call(cmd + ["tsv"], png.tobytes()).decode("utf-8", "replace"))

    def read_page(self, image: np.ndarray) -> list[Recognized]:
        """The page's text lines, in Tesseract's reading order, with pixel boxes."""
        image = _check_image(image)
        lines: dict[tuple[int, int, int], list[_Word]] = {}
        for word in self._tsv(image, self.page_psm):
            lines.setdefault(word.line, []).append(word)
        out = []
        for words in lines.values():
            words.sort(key=lambda w: w.box[0])
            x0, y0 = min(w.box[0] for w in words), min(w.box[1] for w in words)
            x1, y1 = max(w.box[2] for w in words), max(w.box[3] for w in words)
            quad = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)
            out.append(Recognized(
                text=" ".join(w.text for w in words),
                confidence=_confidence(words),
                quad=quad,
                words=[(w.text, tuple(float(v) for v in w.box)) for w in words],  # type: ignore[misc]
            ))
        return out

    def recognize(self, image: np.ndarray, quads: np.ndarray) -> list[Recognized]:
        """One :class:`Recognized` per quad, read in one tesseract call."""
        image = _check_image(image)
        quads = np.asarray(quads, np.float32).reshape(-1, 4, 2)
        if len(quads) == 0:
            return []
        crops, inverses = zip(*(crop_quad(image, q) for q in quads))
        stack, offsets = _stack(list(crops))
        found: list[list[_Word]] = [[] for _ in crops]
        tops = np.array([oy for _, oy in offsets])
        for word in self._tsv(stack, 6):
            cy = 0.5 * (word.box[1] + word.box[3])
            i = int(np.searchsorted(tops, cy, side="right")) - 1
            if i >= 0 and cy < tops[i] + crops[i].shape[0]:
                found[i].append(word)
        out = []
        for i, q in enumerate(quads):
            words = sorted(found[i], key=lambda w: (w.line, w.box[0]))
            ox, oy = offsets[i]
            placed = [(w.text, _to_image(w.box, ox, oy, inverses[i])) for w in words]
            out.append(Recognized(
                text=" ".join(w.text for w in words),
                confidence=_confidence(words),
                quad=q.copy(),
                words=placed,
            ))
        return out


def _confidence(words: list[_Word]) -> float:
    """Mean word confidence as 0..1 (Tesseract reports 0..100, -1 for none)."""
    confs = [w.conf for w in words if w.conf >= 0]
    return float(np.mean(confs)) / 100.0 if confs else 0.0


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    return image


def _stack(crops: list[np.ndarray]) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Crops one under another on white, left-aligned; and each crop's (x, y) offset."""
    gaps = [max(_MIN_GAP, int(_GAP * c.shape[0])) for c in crops]
    margin = max(gaps)
    width = max(c.shape[1] for c in crops) + 2 * margin
    height = sum(c.shape[0] for c in crops) + sum(gaps) + margin
    canvas = np.full((height, width, 3), 255, np.uint8)
    offsets, y = [], margin
    for crop, gap in zip(crops, gaps):
        h, w = crop.shape[:2]
        canvas[y : y + h, margin : margin + w] = crop
        offsets.append((margin, y))
        y += h + gap
    return canvas, offsets


def _to_image(box: tuple[int, int, int, int], ox: int, oy: int, inv: np.ndarray) -> tuple[float, float, float, float]:
    """Axis-aligned image box of a word box given in stack pixels."""
    import cv2

    x0, y0, x1, y1 = box[0] - ox, box[1] - oy, box[2] - ox, box[3] - oy
    pts = np.array([[[x0, y0], [x1, y0], [x1, y1], [x0, y1]]], np.float64)
    p = cv2.perspectiveTransform(pts, inv)[0]
    return float(p[:, 0].min()), float(p[:, 1].min()), float(p[:, 0].max()), float(p[:, 1].max())


_LANG = re.compile(r"^[A-Za-z0-9_]+(\+[A-Za-z0-9_]+)*$")


@RECOGNIZERS.register("tesseract")
def _make(lang: str = "eng", model: str | None = None, **kw: Any) -> TesseractRecognizer:
    """Factory: ``model``, when given, is a tessdata directory."""
    if not _LANG.match(lang):
        raise ModelError(f"bad tesseract language {lang!r}: use codes joined by '+', e.g. 'eng+fra+deu'")
    tessdata = model or kw.pop("tessdata", None)
    if tessdata is not None and not os.path.isdir(tessdata):
        raise ModelError(f"tessdata directory {tessdata} not found; pass a folder of *.traineddata files")
    return TesseractRecognizer(lang=lang, tessdata=tessdata, **kw)
