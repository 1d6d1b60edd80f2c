"""Florence-2 text reading with the native transformers classes (no remote code).

Two ways to read, chosen by ``mode``:

* ``"page"`` (default): the engine is a :class:`docrag.recognize.PageReader`.
  ``read_page`` cuts the page into overlapping tiles (Florence-2 squeezes any
  image into 768 x 768, so a whole 300 dpi page would shrink small text
  beyond reading), asks ``<OCR_WITH_REGION>`` of each tile, maps the
  ``<loc_*>`` boxes back to page pixels and merges the tiles' lines.
* ``"crops"``: ``recognize`` reads each detected quad with ``<OCR>``, for use
  behind a detector like any other recognizer.

Weights load on first use, once per instance. Checkpoints must be in the
transformers format (``florence-community/Florence-2-base``, ``-large``,
``-base-ft``, ``-large-ft``); ``microsoft/Florence-2-*`` hold the original
remote-code format, which the native classes cannot read.

>>> from docrag.recognize import RECOGNIZERS
>>> import docrag.recognize.florence2
>>> "florence2" in RECOGNIZERS.names()
True
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any, Literal

import numpy as np

from docrag.errors import ModelError
from docrag.recognize import RECOGNIZERS, Recognized
from docrag.recognize.florence2_regions import (
    LOC_BINS,
    TiledLine,
    merge_tiled_lines,
    parse_ocr_regions,
    split_segments,
    tile_grid,
)

__all__ = ["Florence2Recognizer", "DEFAULT_MODEL"]

DEFAULT_MODEL = "florence-community/Florence-2-base"
_PAGE_TASK = "<OCR_WITH_REGION>"
_LINE_TASK = "<OCR>"
# A dense 768 px tile holds ~30 lines of ~20 tokens (text + 8 boxes); BART's
# decoder has 1024 positions. A single line rarely passes 60 tokens.
_MAX_NEW_TOKENS = {"page": 1024, "crops": 128}
_NOISE = re.compile(r"<loc_\d+>|</?s>|<pad>")  # tokens an <OCR> answer may hold besides text
_HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")
_SURELY_VERTICAL = 4.0  # crops this much taller than wide are read turned both ways
_REMOTE_CODE = (
    "holds a remote-code Florence-2 checkpoint, which the native transformers classes cannot load "
    "(its weights would be left random); use the converted florence-community/Florence-2-* weights"
)
_FETCH_HINT = (
    "pass model= a local directory holding a transformers-format Florence-2 checkpoint, e.g. "
    f"`hf download {DEFAULT_MODEL} --local-dir DIR` (older huggingface_hub: `huggingface-cli download`), "
    "then model='DIR'"
)


class Florence2Recognizer:
    """Florence-2 OCR; see :class:`docrag.recognize.Recognizer` and :class:`docrag.recognize.PageReader`.

    Args:
        model: A hub id or a local directory with a transformers-format checkpoint.
        device: ``"auto"`` (CUDA when available, else CPU), or a torch device string.
        dtype: ``"auto"`` (float16 on CUDA, float32 on CPU) or a torch dtype name.
        mode: ``"page"`` reads whole pages (``read_page``, ``page_mode`` true);
            ``"crops"`` reads detector quads (``recognize``).
        batch_size: Tiles or crops per ``generate`` call.
        max_new_tokens: Answer length cap; 1024 for pages, 128 for crops when None.
        num_beams: 1 (greedy) by default. Microsoft's examples use 3, which
            fixes the odd character but costs about 3x decoder time and memory
            per tile; OCR answers are near-deterministic, so greedy is the
            better trade for bulk ingestion.
        tile_size: Side of a page tile in page pixels; each tile is resized to
            the model's 768 x 768 input. 1536 at 300 dpi keeps 10 pt text
            about 14 px tall in the model's view.
        tile_overlap: Minimum overlap of neighbouring tiles in page pixels;
            more than a text line's height, so every line is whole in some tile.
        local_files_only: Never contact the hub (the cache or a local directory only).

    >>> rec = Florence2Recognizer(mode="crops")
    >>> rec.page_mode, rec.recognize(np.zeros((10, 10, 3), np.uint8), np.zeros((0, 4, 2), np.float32))
    (False, [])
    """

    name = "florence2"

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        device: str = "auto",
        dtype: str = "auto",
        mode: Literal["page", "crops"] = "page",
        batch_size: int = 8,
        max_new_tokens: int | None = None,
        num_beams: int = 1,
        tile_size: int = 1536,
        tile_overlap: int = 160,
        local_files_only: bool = False,
    ) -> None:
        if mode not in _MAX_NEW_TOKENS:
            raise ValueError(f"mode must be 'page' or 'crops', got {mode!r}")
        self.model = str(model) if model else DEFAULT_MODEL
        self.device = device
        self.dtype = dtype
        self.mode = mode
        self.page_mode = mode == "page"
        self.batch_size = max(1, int(batch_size))
        self.max_new_tokens = int(max_new_tokens or _MAX_NEW_TOKENS[mode])
        self.num_beams = max(1, int(num_beams))
        self.tile_size = int(tile_size)
        self.tile_overlap = int(tile_overlap)
        self.local_files_only = local_files_only
        self._loaded: tuple[Any, Any, dict[str, Any]] | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------ loading

    def _load(self) -> tuple[Any, Any, dict[str, Any]]:
        """(model, processor, token facts), loaded once."""
        with self._lock:
            if self._loaded is None:
                self._loaded = self._load_uncached()
        return self._loaded

    def _load_uncached(self) -> tuple[Any, Any, dict[str, Any]]:
        try:
            import torch
            from transformers import Florence2ForConditionalGeneration, Florence2Processor
        except ImportError as exc:
            raise ImportError(
                "the florence2 engine needs torch and transformers>=4.56 (native Florence-2): "
                "pip install 'transformers>=4.56' torch"
            ) from exc
        src = _check_source(self.model)
        device = ("cuda" if torch.cuda.is_available() else "cpu") if self.device == "auto" else self.device
        if self.dtype == "auto":
            dtype = torch.float16 if device.startswith("cuda") else torch.float32
        else:
            dtype = getattr(torch, self.dtype, None)
            if not isinstance(dtype, torch.dtype):
                raise ValueError(f"unknown torch dtype {self.dtype!r}")
        try:
            processor = Florence2Processor.from_pretrained(src, local_files_only=self.local_files_only)
            model = Florence2ForConditionalGeneration.from_pretrained(
                src, dtype=dtype, local_files_only=self.local_files_only
            )
        except (OSError, ValueError, KeyError, AttributeError, TypeError) as exc:
            # OSError: missing files, no network; the others: a checkpoint that is
            # not in the native format (e.g. a tokenizer without `image_token`).
            raise ModelError(f"cannot load Florence-2 model {self.model!r}: {exc}; {_FETCH_HINT}") from exc
        if getattr(model.config, "auto_map", None):
            raise ModelError(f"{self.model} {_REMOTE_CODE}; {_FETCH_HINT}")
        model.to(device).eval()
        tok = processor.tokenizer
        loc_tokens = [f"<loc_{i}>" for i in range(LOC_BINS)]
        loc_ids = {i for i in tok.convert_tokens_to_ids(loc_tokens) if i is not None and i != tok.unk_token_id}
        if len(loc_ids) != LOC_BINS:
            raise ModelError(f"{self.model!r}: the tokenizer lacks the <loc_0>..<loc_999> tokens; {_FETCH_HINT}")
        facts = {
            "device": device,
            "dtype": dtype,
            "loc_ids": loc_ids,
            "skip_ids": {i for i in (tok.bos_token_id, tok.pad_token_id) if i is not None},
            "stop_id": tok.eos_token_id,
        }
        return model, processor, facts

    # ------------------------------------------------------------ generation

    def _generate(self, images: list[np.ndarray], task: str) -> list[list[tuple[str, float]]]:
        """Per image, the answer to ``task`` as ``(text, mean token probability)`` pieces.

        ``<OCR_WITH_REGION>`` answers come cut after each box, one piece per
        line; ``<OCR>`` answers are one piece.
        """
        import torch
        from PIL import Image

        model, processor, facts = self._load()
        tok = processor.tokenizer

        def decode(ids: list[int]) -> str:
            return tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

        out: list[list[tuple[str, float]]] = []
        for s in range(0, len(images), self.batch_size):
            batch = [Image.fromarray(np.ascontiguousarray(im)) for im in images[s : s + self.batch_size]]
            inputs = processor(text=[task] * len(batch), images=batch, return_tensors="pt").to(facts["device"])
            inputs["pixel_values"] = inputs["pixel_values"].to(facts["dtype"])
            with torch.inference_mode():
                gen = model.generate(
                    **inputs,
                    max_new_tokens=self.max_new_tokens,
                    num_beams=self.num_beams,
                    do_sample=False,
                    output_scores=True,
                    return_dict_in_generate=True,
                )
                # Log-probabilities of the chosen tokens: greedy scores are raw
                # logits (normalise them), beam scores are log-softmaxed already.
                logp = model.compute_transition_scores(
                    gen.sequences,
                    gen.scores,
                    getattr(gen, "beam_indices", None) if self.num_beams > 1 else None,
                    normalize_logits=self.num_beams == 1,
                )
            probs = logp.float().exp().cpu().numpy()
            seqs = gen.sequences[:, 1:].cpu().numpy()  # drop the decoder start token
            for ids, p in zip(seqs, probs):
                n = min(len(ids), len(p))
                out.append(
                    split_segments(
                        ids[:n].tolist(), p[:n].tolist(), facts["loc_ids"], facts["skip_ids"], facts["stop_id"], decode
                    )
                )
        return out

    # ------------------------------------------------------------ reading

    def read_page(self, image: np.ndarray) -> list[Recognized]:
        """The page's text lines, with quads in page pixels, in reading order.

        Args:
            image: ``(H, W, 3)`` uint8 RGB page.

        Returns:
            One :class:`Recognized` per line; ``words`` is empty (Florence-2
            places lines, not words).
        """
        image = _check_image(image)
        h, w = image.shape[:2]
        tiles = tile_grid(w, h, self.tile_size, self.tile_overlap)
        answers = self._generate([image[y0:y1, x0:x1] for x0, y0, x1, y1 in tiles], _PAGE_TASK)
        lines = []
        for (x0, y0, x1, y1), pieces in zip(tiles, answers):
            for piece, conf in pieces:
                for text, quad in parse_ocr_regions(piece, x1 - x0, y1 - y0, origin=(x0, y0)):
                    lines.append(TiledLine(text, conf, quad, (x0, y0, x1, y1)))
        merged = merge_tiled_lines(lines, w, h, margin=max(4.0, 0.01 * self.tile_size))
        limit = np.array([w, h], np.float32)
        return [
            Recognized(
                text=ln.text,
                confidence=float(ln.confidence),
                quad=np.ascontiguousarray(np.clip(ln.quad, 0, limit), np.float32),
                words=[],
            )
            for ln in merged
        ]

    def recognize(self, image: np.ndarray, quads: np.ndarray) -> list[Recognized]:
        """One :class:`Recognized` per quad of ``quads`` (``(N, 4, 2)`` pixels), in order."""
        image = _check_image(image)
        quads = np.asarray(quads, np.float32).reshape(-1, 4, 2)
        if len(quads) == 0:
            return []
        crops = [_crop(image, q) for q in quads]
        # Florence-2 reads upright text only: clearly vertical crops are read
        # turned both ways and the more confident reading is kept.
        jobs = [
            (i, k)
            for i, c in enumerate(crops)
            for k in ((1, 3) if c.shape[0] >= _SURELY_VERTICAL * c.shape[1] else (0,))
        ]
        answers = self._generate([_square(np.rot90(crops[i], k)) for i, k in jobs], _LINE_TASK)
        best: dict[int, tuple[str, float]] = {}
        for (i, _), pieces in zip(jobs, answers):
            text = " ".join(_NOISE.sub(" ", "".join(t for t, _ in pieces)).split())
            conf = float(np.mean([c for _, c in pieces])) if pieces else 0.0
            if i not in best or conf > best[i][1]:
                best[i] = (text, conf if text else 0.0)
        return [
            Recognized(text=best[i][0], confidence=best[i][1], quad=q.copy(), words=[]) for i, q in enumerate(quads)
        ]


# ---------------------------------------------------------------- helpers


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    return image


def _check_source(model: str) -> str:
    """``model`` as given when it can be loaded, else a :class:`ModelError` saying why."""
    path = Path(model).expanduser()
    if path.is_dir():
        config = path / "config.json"
        if not config.is_file():
            raise ModelError(f"Florence-2 model directory {path} has no config.json; {_FETCH_HINT}")
        try:
            meta = json.loads(config.read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(f"{config} is not readable JSON ({exc}); {_FETCH_HINT}") from exc
        if "auto_map" in meta:
            raise ModelError(f"{path} {_REMOTE_CODE}; {_FETCH_HINT}")
        return str(path)
    if model.lower().startswith("microsoft/florence-2"):
        raise ModelError(f"{model} {_REMOTE_CODE}; {_FETCH_HINT}")
    if path.exists() or not _HUB_ID.match(model):
        raise ModelError(f"Florence-2 model directory {model} not found; {_FETCH_HINT}")
    return model  # a hub id


def _crop(image: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The quad (corners clockwise from top-left) warped to an upright rectangle."""
    import cv2

    w = max(2, int(round(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[3] - quad[2])))))
    h = max(2, int(round(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2])))))
    dst = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    m = cv2.getPerspectiveTransform(quad.astype(np.float32), dst)
    return cv2.warpPerspective(image, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


def _square(crop: np.ndarray) -> np.ndarray:
    """``crop`` padded to a square with its border colour.

    The processor resizes every image to 768 x 768; a 20:1 text line would be
    stretched twentyfold in height. Padding keeps the glyphs' shape.
    """
    h, w = crop.shape[:2]
    side = max(h, w)
    border = np.concatenate([crop[0], crop[-1], crop[:, 0], crop[:, -1]])
    out = np.empty((side, side, 3), np.uint8)
    out[:] = np.median(border, axis=0).astype(np.uint8)
    y, x = (side - h) // 2, (side - w) // 2
    out[y : y + h, x : x + w] = crop
    return out


@RECOGNIZERS.register("florence2")
def _make(model: str | None = None, **kwargs: Any) -> Florence2Recognizer:
    return Florence2Recognizer(model=model, **kwargs)
