"""Image embedders, offline: tiny random SigLIP and CLIP built from configs, and score fusion.

The engines run the real transformers classes, image processors (PIL backend,
no torchvision) and tokenizers, saved to a temp directory and loaded back
through ``get_image_embedder``, as a downloaded checkpoint would be. Their
weights are random, so only shapes, norms and determinism are checked; the
fused ranking is checked with a deterministic colour embedder instead.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from docrag.embed.image import IMAGE_EMBEDDERS, ImageEmbedder, fuse_scores, get_image_embedder
from docrag.errors import ConfigError, ModelError

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

SPECIALS = ["<pad>", "<unk>", "<s>", "</s>"]  # </s> is not id 2: CLIP's legacy pooling keys on that
WORDS = ["a", "bar", "chart", "of", "red", "green", "blue", "table", "pie", "figure"]
TEXT_LEN = 16


def _tokenizer(bos: bool):  # type: ignore[no-untyped-def]
    """A word-level fast tokenizer ending every text with ``</s>`` (and starting with ``<s>`` if ``bos``)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIALS + WORDS)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    template = ("<s> $A </s>" if bos else "$A </s>")
    backend.post_processor = processors.TemplateProcessing(
        single=template, special_tokens=[("<s>", vocab["<s>"]), ("</s>", vocab["</s>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
        model_max_length=TEXT_LEN,
    )


def _text_config(hidden: int) -> dict:
    return {
        "vocab_size": len(SPECIALS) + len(WORDS), "hidden_size": hidden, "intermediate_size": 2 * hidden,
        "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": TEXT_LEN,
        "pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3,
    }


def _vision_config(hidden: int) -> dict:
    return {
        "hidden_size": hidden, "intermediate_size": 2 * hidden, "num_hidden_layers": 1,
        "num_attention_heads": 2, "image_size": 32, "patch_size": 8,
    }


def _build_siglip(path: Path) -> None:
    from transformers import SiglipConfig, SiglipImageProcessorPil, SiglipModel, SiglipProcessor

    # SigLIP has no shared projection: the text head maps to the vision width (32).
    config = SiglipConfig(text_config=_text_config(32), vision_config=_vision_config(32))
    torch.manual_seed(0)
    SiglipModel(config).save_pretrained(path)
    image_processor = SiglipImageProcessorPil(size={"height": 32, "width": 32})
    SiglipProcessor(image_processor, _tokenizer(bos=False)).save_pretrained(path)


def _build_clip(path: Path) -> None:
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    config = CLIPConfig(text_config=_text_config(16), vision_config=_vision_config(24), projection_dim=20)
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(path)
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor, _tokenizer(bos=True)).save_pretrained(path)


BUILDERS = {"siglip": (_build_siglip, 32), "clip": (_build_clip, 20)}


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    dirs = {}
    for name, (build, _) in BUILDERS.items():
        dirs[name] = tmp_path_factory.mktemp(f"{name}-tiny")
        build(dirs[name])
    return dirs


def _images() -> list:
    from PIL import Image

    rng = np.random.default_rng(0)
    return [
        rng.integers(0, 255, (40, 120, 3), dtype=np.uint8),  # wide chart, RGB array
        Image.fromarray(rng.integers(0, 255, (90, 30, 3), dtype=np.uint8)),  # tall table, PIL
        rng.integers(0, 255, (7, 7), dtype=np.uint8),  # tiny grayscale
        Image.fromarray(rng.integers(0, 255, (33, 50, 4), dtype=np.uint8), mode="RGBA"),
    ]


def _unit_rows(vecs: np.ndarray) -> bool:
    return bool(np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5))


# ---------------------------------------------------------------- import, registry


def test_import_does_not_load_torch() -> None:
    code = (
        "import sys, docrag.embed.image; "
        "bad = [m for m in ('torch', 'transformers', 'PIL') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_engine_has_a_tiny_model() -> None:
    assert set(IMAGE_EMBEDDERS.names()) == set(BUILDERS)


def test_unknown_engine_lists_known() -> None:
    with pytest.raises(ConfigError, match="clip, siglip"):
        get_image_embedder("nope")


# ---------------------------------------------------------------- real engines, tiny models


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_engine_embeds_images_and_text(name: str, tiny_dirs: dict[str, Path]) -> None:
    emb = get_image_embedder(name, model=str(tiny_dirs[name]), device="cpu")
    dim = BUILDERS[name][1]
    assert isinstance(emb, ImageEmbedder) and emb.dim == dim
    assert emb.name == f"{name}:{tiny_dirs[name]}"
    assert get_image_embedder(name, model=str(tiny_dirs[name]), device="cpu") is emb  # cached

    images = _images()
    vecs = emb.embed_images(images)
    assert vecs.shape == (4, dim) and vecs.dtype == np.float32 and vecs.flags.c_contiguous
    assert _unit_rows(vecs)
    np.testing.assert_allclose(emb.embed_images(images[:2]), vecs[:2], atol=1e-5)  # deterministic
    np.testing.assert_allclose(emb.embed_images([images[1]]), vecs[1:2], atol=1e-5)  # batch-independent
    assert not np.allclose(vecs[0], vecs[1])

    q = emb.embed_text(["a bar chart"])
    assert q.shape == (1, dim) and q.dtype == np.float32 and _unit_rows(q)
    batch = emb.embed_text(["a pie chart of red figure", "a bar chart", "unknown words here"])
    np.testing.assert_allclose(batch[1], q[0], atol=1e-5)  # padding does not leak into the vector
    assert emb.embed_images([]).shape == emb.embed_text([]).shape == (0, dim)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_batches_match_single_calls(name: str, tiny_dirs: dict[str, Path]) -> None:
    from docrag.embed.image import ClipEmbedder, SiglipEmbedder

    cls = {"siglip": SiglipEmbedder, "clip": ClipEmbedder}[name]
    small = cls(str(tiny_dirs[name]), device="cpu", batch_size=1)
    big = get_image_embedder(name, model=str(tiny_dirs[name]), device="cpu")
    np.testing.assert_allclose(small.embed_images(_images()), big.embed_images(_images()), atol=1e-5)
    texts = ["red", "a green table", "blue pie chart"]
    np.testing.assert_allclose(small.embed_text(texts), big.embed_text(texts), atol=1e-5)


def test_bad_images_are_refused(tiny_dirs: dict[str, Path]) -> None:
    emb = get_image_embedder("clip", model=str(tiny_dirs["clip"]), device="cpu")
    with pytest.raises(ValueError, match="uint8"):
        emb.embed_images([np.zeros((8, 8, 3), np.float32)])
    with pytest.raises(ValueError, match="shape"):
        emb.embed_images([np.zeros((8, 8, 2), np.uint8)])
    with pytest.raises(ValueError, match="empty"):
        emb.embed_images([np.zeros((0, 8, 3), np.uint8)])


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_missing_model_dir_says_what_to_do(name: str, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelError, match="hf download") as err:
        get_image_embedder(name, model=str(missing))
    assert str(missing) in str(err.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="hf download") as err:
        get_image_embedder(name, model=str(empty))
    assert str(empty) in str(err.value)


def test_sentencepiece_tokenizer_needs_the_package(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    """Hub SigLIP checkpoints carry a sentencepiece SiglipTokenizer: say which pip install fixes it."""
    import importlib.util
    import json
    import shutil

    if importlib.util.find_spec("sentencepiece") is not None:
        pytest.skip("sentencepiece is installed")
    model = tmp_path / "siglip-spm"
    shutil.copytree(tiny_dirs["siglip"], model)
    (model / "tokenizer.json").unlink()
    (model / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "SiglipTokenizer"}))
    (model / "spiece.model").write_bytes(b"not a real sentencepiece model")
    with pytest.raises(ImportError, match="pip install sentencepiece"):
        get_image_embedder("siglip", model=str(model), device="cpu")


# ---------------------------------------------------------------- fusion


PALETTE = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (30, 60, 220), "yellow": (240, 210, 30)}


class FakeImageEmbedder:
    """Deterministic: images by colour histogram, texts by colour words; no model.

    Each non-white pixel votes for its nearest palette colour; a text's vector
    counts the colour words in it. "red chart" and a mostly red crop point the same way.
    """

    name = "fake-colour"
    dim = len(PALETTE)

    def embed_images(self, images: list) -> np.ndarray:
        centres = np.array(list(PALETTE.values()), np.float32)
        out = np.zeros((len(images), self.dim), np.float32)
        for i, image in enumerate(images):
            px = np.asarray(image, np.float32).reshape(-1, 3)
            px = px[(px < 235).any(axis=1)]  # the white background votes for nothing
            nearest = np.linalg.norm(px[:, None, :] - centres[None], axis=2).argmin(axis=1)
            out[i] = np.bincount(nearest, minlength=self.dim)
        return _normalize(out)

    def embed_text(self, texts: list[str]) -> np.ndarray:
        words = [set(t.lower().split()) for t in texts]
        return _normalize(np.array([[c in w for c in PALETTE] for w in words], np.float32))


def _normalize(vecs: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    return np.where(norms > 0, vecs / np.maximum(norms, 1e-12), 1.0 / np.sqrt(vecs.shape[1])).astype(np.float32)


def _chart(colour: str, h: int, w: int) -> np.ndarray:
    """A white crop with bars of ``colour`` and a black axis."""
    img = np.full((h, w, 3), 255, np.uint8)
    for k, x in enumerate(range(w // 8, w - w // 8, w // 4)):
        img[h - 4 - (k + 1) * h // 6 : h - 4, x : x + w // 10] = PALETTE[colour]
    img[h - 4 :, :] = 0
    return img


def test_fake_image_embedder_is_an_image_embedder() -> None:
    fake = FakeImageEmbedder()
    assert isinstance(fake, ImageEmbedder)
    vecs = fake.embed_images([_chart("red", 60, 160)])
    assert vecs.argmax() == list(PALETTE).index("red") and _unit_rows(vecs)


def test_fused_ranking_puts_the_red_chart_first() -> None:
    # Three figure chunks. Their captions say nothing about colour, so the text
    # side ranks them by wording alone and puts the blue chart first.
    crops = {10: _chart("blue", 80, 200), 11: _chart("red", 120, 90), 12: _chart("green", 50, 50)}
    text_scores = {10: 0.62, 11: 0.55, 12: 0.30}

    fake = FakeImageEmbedder()
    ids = list(crops)
    image_vecs = fake.embed_images([crops[i] for i in ids])
    query = fake.embed_text(["red chart"])[0]
    image_scores = dict(zip(ids, (image_vecs @ query).tolist()))
    assert max(image_scores, key=image_scores.get) == 11

    assert [i for i, _ in fuse_scores(text_scores, image_scores, weight=0.0)] == [10, 11, 12]
    fused = fuse_scores(text_scores, image_scores, weight=0.5)
    assert [i for i, _ in fused] == [11, 10, 12]
    assert all(0.0 <= s <= 1.0 for _, s in fused)
    assert [i for i, _ in fuse_scores(text_scores, image_scores, weight=1.0)][0] == 11


def test_fuse_scores_edges() -> None:
    assert fuse_scores({}, {}) == []
    # A chunk found by one side only scores 0 on the other.
    assert fuse_scores({1: 0.4}, {2: 0.9}, weight=0.25) == [(1, 0.75), (2, 0.25)]
    # Equal scores on a side carry no preference; ties go to the smaller id.
    assert fuse_scores({3: 0.5, 1: 0.5}, {}) == [(1, 0.5), (3, 0.5)]
    # Scale does not matter: only the order and the gaps within each side.
    a = fuse_scores({1: 0.9, 2: 0.1, 3: 0.7}, {1: 0.2, 2: 0.3, 3: 0.22}, weight=0.4)
    b = fuse_scores({1: 90.0, 2: 10.0, 3: 70.0}, {1: 0.02, 2: 0.03, 3: 0.022}, weight=0.4)
    assert [i for i, _ in a] == [i for i, _ in b] == [1, 3, 2]
    np.testing.assert_allclose([s for _, s in a], [s for _, s in b])
    with pytest.raises(ValueError, match="weight"):
        fuse_scores({1: 1.0}, {1: 1.0}, weight=1.5)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_real_engine_feeds_fusion(name: str, tiny_dirs: dict[str, Path]) -> None:
    """The real code path end to end: crops and a query through one engine, then fused."""
    emb = get_image_embedder(name, model=str(tiny_dirs[name]), device="cpu")
    crops = [_chart(c, 40 + 20 * k, 100 - 10 * k) for k, c in enumerate(PALETTE)]
    image_scores = dict(enumerate((emb.embed_images(crops) @ emb.embed_text(["red bar chart"])[0]).tolist()))
    fused = fuse_scores({0: 0.3, 1: 0.2}, image_scores)
    assert sorted(i for i, _ in fused) == [0, 1, 2, 3]
    assert all(a[1] >= b[1] for a, b in zip(fused, fused[1:]))
