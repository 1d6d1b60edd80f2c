"""Image embedders: figure/table crops and text queries into one vector space.

``siglip`` and ``clip`` run a dual-encoder through ``transformers`` (a hub id
or a local directory): crops go through the vision tower, queries through the
model's own text tower, so a text query can be scored against ``image.faiss``.
Search puts that image-side ranking into its fusion (rank and relative score), weighted
as much as the text side together (:func:`docrag.retrieve.search`).
:func:`fuse_scores` is a score-only alternative (min-max per side) that
search does not use today. With no image embedder configured the text side
alone ranks figures, which is the offline default.

Importing this module loads neither torch nor transformers; an engine loads
its model when it is built, once per process through :func:`get_image_embedder`.

>>> fuse_scores({1: 0.9, 2: 0.5}, {2: 0.3, 3: 0.1}, weight=0.6)[0][0]
2
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Union, runtime_checkable

import numpy as np

from docrag.embed import check_vectors
from docrag.errors import ModelError
from docrag.registry import Registry

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = [
    "ImageEmbedder",
    "IMAGE_EMBEDDERS",
    "get_image_embedder",
    "fuse_scores",
    "embed_pngs",
    "SiglipEmbedder",
    "ClipEmbedder",
]

ImageLike = Union[np.ndarray, "PILImage.Image"]

SIGLIP_MODEL = "google/siglip-base-patch16-224"
CLIP_MODEL = "openai/clip-vit-base-patch32"


@runtime_checkable
class ImageEmbedder(Protocol):
    """Embeds images, and texts through the matching text tower, into unit float32 vectors.

    ``name`` is what the index records so it can be reopened with the same model;
    ``embed_images`` and ``embed_text`` return ``(n, dim)`` arrays in one space.
    """

    name: str
    dim: int

    def embed_images(self, images: list[ImageLike]) -> np.ndarray: ...

    def embed_text(self, texts: list[str]) -> np.ndarray: ...


IMAGE_EMBEDDERS: Registry[ImageEmbedder] = Registry("image embedder")


@lru_cache(maxsize=4)
def get_image_embedder(name: str, model: str | None = None, device: str = "auto") -> ImageEmbedder:
    """The image embedder ``name`` (``siglip``, ``clip``) with ``model`` weights, loaded once per process.

    Args:
        name: A registered engine; an unknown one raises ``ConfigError`` listing the known ones.
        model: Hub id or local directory; ``None`` takes the engine's default hub id.
        device: ``auto`` (CUDA with float16 when present, else CPU), ``cpu`` or ``cuda``.

    >>> emb = get_image_embedder("siglip", model="/models/siglip-base")  # doctest: +SKIP
    >>> emb.embed_text(["a bar chart"]).shape  # doctest: +SKIP
    (1, 768)
    """
    return IMAGE_EMBEDDERS.create(name, model=model, device=device)


def embed_pngs(model: ImageEmbedder, pngs: list[bytes]) -> np.ndarray:
    """Vectors of encoded images (figure crops as stored in the index), shape ``(n, dim)``."""
    import cv2

    images = [cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
              for png in pngs]
    return model.embed_images(images)


def fuse_scores(
    text_scores: dict[int, float], image_scores: dict[int, float], weight: float = 0.5
) -> list[tuple[int, float]]:
    """Fuse one query's text-side and image-side scores per chunk id, best first.

    Each side is min-max normalized over its own candidates to ``[0, 1]``
    (all-equal scores, or a single candidate, count as 1.0), then
    ``(1 - weight) * text + weight * image``; a chunk missing from a side gets 0
    there. Ties go to the smaller id, so the order is deterministic.

    Why min-max rather than raw scores or RRF: the two sides' cosines live on
    different scales (CLIP/SigLIP text-image cosines sit in a narrow band near
    0.1-0.3, MiniLM text-text cosines spread over 0.2-0.8), so a raw sum lets
    the text side decide alone; RRF would fix the scale but throws away the
    gaps, so a crop that matches far better than the rest gets the same boost
    as one that barely wins. Min-max keeps the gaps and makes ``weight`` mean
    what it says.

    Args:
        text_scores: chunk id -> score from the text embedder (higher is better).
        image_scores: chunk id -> score from the image embedder (higher is better).
        weight: Share of the image side, in ``[0, 1]``; 0 ranks by text alone.

    >>> fuse_scores({1: 0.8, 2: 0.6}, {1: 0.1, 2: 0.3}, weight=0.75)
    [(2, 0.75), (1, 0.25)]
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {weight}")
    text_n, image_n = _minmax(text_scores), _minmax(image_scores)
    fused = {
        i: (1.0 - weight) * text_n.get(i, 0.0) + weight * image_n.get(i, 0.0)
        for i in text_n.keys() | image_n.keys()
    }
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))


def _minmax(scores: dict[int, float]) -> dict[int, float]:
    if not scores:
        return {}
    lo, hi = min(scores.values()), max(scores.values())
    if hi - lo <= 1e-12:
        return {i: 1.0 for i in scores}
    return {i: (s - lo) / (hi - lo) for i, s in scores.items()}


def _to_square_rgb(image: ImageLike) -> PILImage.Image:
    """``image`` as an RGB PIL image padded with white to a centred square.

    Figure crops are often wide (charts) or tall (tables); CLIP's processor
    centre-crops the short side away and SigLIP's squashes to a square, so
    padding first keeps the whole figure and its aspect ratio.
    """
    from PIL import Image

    if isinstance(image, np.ndarray):
        arr = image
        if arr.dtype != np.uint8:
            raise ValueError(f"image arrays must be uint8, got {arr.dtype}")
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
            raise ValueError(f"expected an HxW, HxWx3 (RGB) or HxWx4 (RGBA) array, got shape {arr.shape}")
        image = Image.fromarray(np.ascontiguousarray(arr))
    elif not isinstance(image, Image.Image):
        raise TypeError(f"expected a numpy array or a PIL image, got {type(image).__name__}")
    if image.width == 0 or image.height == 0:
        raise ValueError(f"empty image of size {image.width}x{image.height}")
    rgba = image.convert("RGBA")  # transparent areas become white, not black
    side = max(rgba.width, rgba.height)
    canvas = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    canvas.alpha_composite(rgba, ((side - rgba.width) // 2, (side - rgba.height) // 2))
    return canvas.convert("RGB")


def _fetch_hint(default: str) -> str:
    return (
        f"download it once with `hf download {default} --local-dir DIR` "
        "(older huggingface_hub: `huggingface-cli download`), then pass model='DIR'"
    )


class _DualEncoder:
    """A transformers dual encoder: ``get_image_features`` / ``get_text_features``, L2-normalized."""

    engine = ""
    default_model = ""
    model_class = ""
    text_padding: str | bool = True
    text_inputs: tuple[str, ...] = ("input_ids", "attention_mask")

    def __init__(self, model: str | None = None, device: str = "auto", batch_size: int = 16) -> None:
        self.model_ref = model or self.default_model
        # The index records the name: the engine alone for its default weights,
        # else engine:model so another checkpoint is not mistaken for this one.
        self.name = self.engine if self.model_ref == self.default_model else f"{self.engine}:{self.model_ref}"
        self.batch_size = batch_size
        self.device, self._dtype = self._resolve_device(device)
        self._model, self._image_processor, self._tokenizer = self._load()
        self.dim = self._dim(self._model.config)
        self._max_length = int(self._model.config.text_config.max_position_embeddings)

    @staticmethod
    def _dim(config: Any) -> int:
        return int(config.projection_dim)

    @staticmethod
    def _resolve_device(device: str) -> tuple[str, Any]:
        try:
            import torch
        except ImportError:
            raise ImportError("image embedding needs torch: pip install torch") from None
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        return device, (torch.float16 if device.startswith("cuda") else torch.float32)

    def _load(self) -> tuple[Any, Any, Any]:
        try:
            import transformers
            from transformers import AutoImageProcessor, AutoTokenizer
        except ImportError:
            raise ImportError("image embedding needs transformers: pip install transformers") from None
        transformers.utils.logging.disable_progress_bar()
        local = Path(self.model_ref).expanduser()
        looks_local = local.is_absolute() or self.model_ref.startswith((".", "~")) or local.exists()
        if looks_local and not local.is_dir():
            raise ModelError(f"{self.engine} model directory {local} not found; {_fetch_hint(self.default_model)}")
        src = str(local) if looks_local else self.model_ref
        # Without torchvision the "fast" image processors are dummies; ask for
        # the PIL one (transformers 5: backend=, 4.x: use_fast=).
        major = int(transformers.__version__.split(".")[0])
        pil = {"backend": "pil"} if major >= 5 else {"use_fast": False}
        try:
            model = getattr(transformers, self.model_class).from_pretrained(
                src, dtype=self._dtype, local_files_only=looks_local
            )
            image_processor = AutoImageProcessor.from_pretrained(src, local_files_only=looks_local, **pil)
            tokenizer = AutoTokenizer.from_pretrained(src, local_files_only=looks_local)
        except ImportError as exc:
            # Released SigLIP checkpoints ship spiece.model only: SiglipTokenizer needs sentencepiece.
            need = "sentencepiece" if "sentencepiece" in str(exc).lower() else ""
            fix = f"pip install {need}" if need else str(exc).splitlines()[0]
            raise ImportError(f"the tokenizer of {self.engine} model {src!r} needs a missing package: {fix}") from exc
        except (OSError, ValueError, KeyError, AttributeError, TypeError) as exc:
            # OSError: missing files or no network; the others: not a checkpoint of this kind.
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelError(
                f"cannot load {self.engine} model {src!r} ({type(exc).__name__}: {first}); "
                f"{_fetch_hint(self.default_model)}"
            ) from exc
        model.to(self.device).eval()
        return model, image_processor, tokenizer

    def embed_images(self, images: list[ImageLike]) -> np.ndarray:
        """Unit vectors of ``images`` (uint8 RGB/RGBA/gray arrays or PIL images), shape ``(n, dim)``."""
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                pil = [_to_square_rgb(im) for im in images[start : start + self.batch_size]]
                batch = self._image_processor(images=pil, return_tensors="pt")
                pixels = batch["pixel_values"].to(self.device, self._dtype)
                out.append(self._unit(self._model.get_image_features(pixel_values=pixels)))
        return self._stack(out)

    def embed_text(self, texts: list[str]) -> np.ndarray:
        """Unit vectors of ``texts`` from the model's text tower, shape ``(n, dim)``."""
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = self._tokenizer(
                    list(texts[start : start + self.batch_size]), padding=self.text_padding,
                    truncation=True, max_length=self._max_length, return_tensors="pt",
                )
                inputs = {k: v.to(self.device) for k, v in batch.items() if k in self.text_inputs}
                out.append(self._unit(self._model.get_text_features(**inputs)))
        return self._stack(out)

    @staticmethod
    def _unit(features: Any) -> np.ndarray:
        # transformers 5 returns an output object with the projected pooler_output; 4.x a tensor.
        feats = getattr(features, "pooler_output", features).float()
        feats = feats / feats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return feats.cpu().numpy()

    def _stack(self, parts: list[np.ndarray]) -> np.ndarray:
        if not parts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return check_vectors(np.concatenate(parts), self.dim)


class SiglipEmbedder(_DualEncoder):
    """SigLIP (``SiglipModel``) by hub id or local directory.

    SigLIP was trained on text padded to the full ``max_length``, unmasked, and
    pools the last token, so queries go in the same way (as in the model card).

    Args:
        model: Hub id or local directory (default ``google/siglip-base-patch16-224``).
        device: ``auto`` (CUDA + float16 when present), ``cpu`` or ``cuda``.
        batch_size: Images or texts per forward pass.

    >>> emb = SiglipEmbedder("/models/siglip-base")  # doctest: +SKIP
    >>> emb.embed_images([np.zeros((40, 90, 3), np.uint8)]).shape  # doctest: +SKIP
    (1, 768)
    """

    engine = "siglip"
    default_model = SIGLIP_MODEL
    model_class = "SiglipModel"
    text_padding = "max_length"
    # Its released tokenizer returns input_ids only: the model was trained
    # attending to the padding, so no attention mask is passed here either.
    text_inputs = ("input_ids",)

    @staticmethod
    def _dim(config: Any) -> int:
        # No shared projection: the text head maps to projection_size, which
        # equals the vision tower's width in every released checkpoint.
        text = config.text_config
        return int(getattr(text, "projection_size", None) or text.hidden_size)


class ClipEmbedder(_DualEncoder):
    """CLIP (``CLIPModel``) by hub id or local directory.

    Args:
        model: Hub id or local directory (default ``openai/clip-vit-base-patch32``).
        device: ``auto`` (CUDA + float16 when present), ``cpu`` or ``cuda``.
        batch_size: Images or texts per forward pass.

    >>> emb = ClipEmbedder("/models/clip-b32")  # doctest: +SKIP
    >>> emb.embed_text(["a pie chart"]).shape  # doctest: +SKIP
    (1, 512)
    """

    engine = "clip"
    default_model = CLIP_MODEL
    model_class = "CLIPModel"
    text_padding = True


@IMAGE_EMBEDDERS.register("siglip")
def _siglip(model: str | None = None, device: str = "auto", batch_size: int = 16) -> ImageEmbedder:
    return SiglipEmbedder(model, device=device, batch_size=batch_size)


@IMAGE_EMBEDDERS.register("clip")
def _clip(model: str | None = None, device: str = "auto", batch_size: int = 16) -> ImageEmbedder:
    return ClipEmbedder(model, device=device, batch_size=batch_size)
