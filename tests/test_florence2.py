"""The florence2 engine, offline: a tiny Florence-2 built from a config, no download.

The tiny model has random weights except for a scripted decoder: its layers'
outputs are zeroed so each next token depends on the previous one only, and
``lm_head`` is set so greedy decoding always writes ``SCRIPT`` below, whatever
the image. That runs the real transformers classes and the real processor end
to end, and still gives answers whose page coordinates can be checked exactly.

``docrag.recognize.florence2`` is imported inside tests, not at collection,
so other modules' tests parametrized over the registry do not pick it up.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from docrag.errors import ModelError
from docrag.recognize import Recognized, get_recognizer
from docrag.recognize.florence2_regions import (
    TiledLine,
    merge_tiled_lines,
    parse_ocr_regions,
    split_segments,
    tile_grid,
)

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

IMAGE_SIZE = 64  # the tiny model's input: (64 / 32) ** 2 + 1 = 5 image tokens
D_MODEL = 32
# Two located lines; the eight bins of each line are distinct, as the scripted
# decoder's state is the previous token alone.
HELLO_BINS = [100, 200, 300, 201, 301, 250, 101, 251]
WORLD_BINS = [500, 600, 700, 601, 701, 650, 501, 651]
SCRIPT = ["hello", *[f"<loc_{b}>" for b in HELLO_BINS], "world", *[f"<loc_{b}>" for b in WORLD_BINS]]
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<image>"]
WORDS = ["what", "is", "the", "text", "in", "image", "with", "regions", "?", ",", "hello", "world"]


def _quad(bins: list[int], width: float, height: float, x0: float = 0.0, y0: float = 0.0) -> np.ndarray:
    """Where the engine must put ``bins`` read in a ``width`` x ``height`` tile at ``(x0, y0)``."""
    b = np.array(bins, np.float64).reshape(4, 2) + 0.5
    return (b / 1000 * [width, height] + [x0, y0]).astype(np.float32)


def _build_tiny(path: Path) -> None:
    """Save a tiny Florence-2 (model, tokenizer, image processor) to ``path``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessorPil,
        Florence2Config,
        Florence2ForConditionalGeneration,
        Florence2Processor,
        PreTrainedTokenizerFast,
    )

    vocab = {t: i for i, t in enumerate(SPECIALS + WORDS)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.add_special_tokens(SPECIALS)
    backend.add_tokens([f"<loc_{i}>" for i in range(1000)])
    # The processor reads tokenizer.image_token / image_token_id.
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_special_tokens={"image_token": "<image>"},
    )
    image_processor = CLIPImageProcessorPil(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        do_center_crop=False,
        image_seq_length=(IMAGE_SIZE // 32) ** 2 + 1,
    )
    # Florence2PostProcessor rejects parse tasks missing from this config.
    processor = Florence2Processor(
        image_processor, tok, post_processor_config={"ocr": {"AREA_THRESHOLD": 0.0}, "pure_text": {}}
    )
    text_config = {
        "model_type": "bart",
        "vocab_size": len(tok),
        "d_model": D_MODEL,
        "encoder_layers": 1,
        "decoder_layers": 1,
        "encoder_attention_heads": 2,
        "decoder_attention_heads": 2,
        "encoder_ffn_dim": 32,
        "decoder_ffn_dim": 32,
        "max_position_embeddings": 256,
        "bos_token_id": 0,
        "pad_token_id": 1,
        "eos_token_id": 2,
        "decoder_start_token_id": 2,
        "forced_eos_token_id": 2,
        "tie_word_embeddings": False,
    }
    # DaViT with four stages of stride 4, 2, 2, 2: a 64 px image gives 2 x 2 features.
    vision_config = {
        "depths": [1, 1, 1, 1],
        "embed_dim": [8, 8, 16, 16],
        "num_heads": [1, 1, 2, 2],
        "num_groups": [1, 1, 2, 2],
        "window_size": 2,
        "projection_dim": D_MODEL,
        "drop_path_rate": 0.0,
        "max_position_embeddings": 16,
        "max_temporal_embeddings": 4,
    }
    config = Florence2Config(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=tok.image_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = Florence2ForConditionalGeneration(config).eval()
    _script_decoder(model, [tok.eos_token_id, *tok.convert_tokens_to_ids(SCRIPT), tok.eos_token_id])
    model.save_pretrained(path)
    processor.save_pretrained(path)


def _script_decoder(model, chain: list[int]) -> None:
    """Make greedy decoding follow ``chain`` (token ids, each step from the previous one)."""
    states = chain[:-1]
    assert len(set(states)) == len(states) <= D_MODEL
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "language_model.decoder." in name and (
                "embed_positions" in name or "out_proj" in name or ".fc2." in name
            ):
                param.zero_()  # the residual stream keeps the token embedding alone
        # Untied, the decoder has its own copy of the token embeddings.
        embs = [p for n, p in model.named_parameters() if n.endswith(("embed_tokens.weight", "shared.weight"))]
        head = model.get_output_embeddings().weight
        assert all(e.data_ptr() != head.data_ptr() for e in embs), "lm_head must not be tied to the embeddings"
        head.zero_()
        for i, (cur, nxt) in enumerate(zip(chain, chain[1:])):
            for emb in embs:
                emb[cur] = 0.0
                emb[cur, i] = 1.0  # layer-normed, this is a spike at dimension i
            head[nxt, i] = 10.0


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("florence2-tiny")
    _build_tiny(path)
    return path


def _recognizer(tiny_dir: Path, **kwargs):
    from docrag.recognize.florence2 import Florence2Recognizer

    return Florence2Recognizer(model=str(tiny_dir), device="cpu", **kwargs)


def _page(h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


def _check(lines: list[Recognized], h: int, w: int) -> None:
    for r in lines:
        assert isinstance(r, Recognized) and isinstance(r.text, str) and r.words == []
        assert 0.0 <= r.confidence <= 1.0
        assert r.quad.shape == (4, 2) and r.quad.dtype == np.float32
        assert (r.quad >= 0).all() and (r.quad[:, 0] <= w).all() and (r.quad[:, 1] <= h).all()


# ---------------------------------------------------------------- import, registry


def test_import_does_not_load_torch() -> None:
    code = (
        "import sys, docrag.recognize.florence2; "
        "bad = [m for m in ('torch', 'transformers', 'cv2') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_registered_and_page_mode() -> None:
    from docrag.recognize import RECOGNIZERS, PageReader, Recognizer
    from docrag.recognize.florence2 import DEFAULT_MODEL, Florence2Recognizer

    assert "florence2" in RECOGNIZERS.names()
    rec = RECOGNIZERS.create("florence2")
    assert isinstance(rec, Florence2Recognizer) and rec.model == DEFAULT_MODEL
    assert isinstance(rec, Recognizer) and isinstance(rec, PageReader) and rec.page_mode
    assert not Florence2Recognizer(mode="crops").page_mode
    with pytest.raises(ValueError):
        Florence2Recognizer(mode="lines")  # type: ignore[arg-type]


# ---------------------------------------------------------------- <loc_*> parsing, tiles


def test_parse_maps_bins_to_pixels() -> None:
    text = "</s><s>Hello<loc_100><loc_200><loc_300><loc_200><loc_300><loc_250><loc_100><loc_250>" + (
        "World 2<loc_0><loc_0><loc_999><loc_0><loc_999><loc_999><loc_0><loc_999></s><pad>"
    )
    (t1, q1), (t2, q2) = parse_ocr_regions(text, 2000, 1000)
    assert (t1, t2) == ("Hello", "World 2")
    np.testing.assert_allclose(q1, [[201, 200.5], [601, 200.5], [601, 250.5], [201, 250.5]])
    np.testing.assert_allclose(q2, [[1, 0.5], [1999, 0.5], [1999, 999.5], [1, 999.5]])
    # In a tile at (1000, 500) of a page, the same answer lands shifted.
    (_, q), _ = parse_ocr_regions(text, 2000, 1000, origin=(1000, 500))
    np.testing.assert_allclose(q, q1 + [1000, 500])


def test_parse_tolerates_spaces_and_drops_empty_text() -> None:
    spaced = "hello world <loc_1> <loc_2> <loc_3> <loc_4> <loc_5> <loc_6> <loc_7> <loc_8>"
    assert [t for t, _ in parse_ocr_regions(spaced, 1000, 1000)] == ["hello world"]
    assert parse_ocr_regions("<s>" + "<loc_5>" * 8 + "</s>", 100, 100) == []
    assert parse_ocr_regions("no boxes at all", 100, 100) == []


def test_split_segments_one_piece_per_line() -> None:
    loc = set(range(100, 1100))
    ids = [0, 7, *range(100, 108), 8, 9, *range(200, 208), 2, 1, 1]
    probs = [1.0, 0.5, *[1.0] * 8, 0.2, 0.2, *[0.2] * 8, 1.0, 1.0, 1.0]
    pieces = split_segments(ids, probs, loc, {0, 1}, 2, lambda ids: ",".join(map(str, ids)))
    locs_a, locs_b = ",".join(map(str, range(100, 108))), ",".join(map(str, range(200, 208)))
    assert [p for p, _ in pieces] == [f"7,{locs_a}", f"8,9,{locs_b}"]
    assert pieces[0][1] == pytest.approx(8.5 / 9) and pieces[1][1] == pytest.approx(0.2)


@pytest.mark.parametrize("w,h", [(300, 200), (2550, 3300), (1537, 1536), (5000, 300)])
def test_tile_grid_covers_page(w: int, h: int) -> None:
    tiles = tile_grid(w, h, 1536, 160)
    seen = np.zeros((h, w), bool)
    for x0, y0, x1, y1 in tiles:
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        assert x1 - x0 == min(w, 1536) and y1 - y0 == min(h, 1536)
        seen[y0:y1, x0:x1] = True
    assert seen.all()
    xs = sorted({t[0] for t in tiles})
    assert all(b - a <= 1536 - 160 for a, b in zip(xs, xs[1:]))  # overlap >= 160


def test_merge_drops_duplicates_and_joins_seams() -> None:
    def line(text: str, x0: float, x1: float, tile: tuple[int, int, int, int], y0: float = 10) -> TiledLine:
        q = np.array([[x0, y0], [x1, y0], [x1, y0 + 20], [x0, y0 + 20]], np.float32)
        return TiledLine(text, 0.9, q, tile)

    left, right = (0, 0, 400, 400), (300, 0, 700, 400)
    lines = [
        line("whole line", 320, 390, left, y0=100),  # read whole in both tiles
        line("whole line", 320, 390, right, y0=100),
        line("one two three", 50, 400, left, y0=200),  # cut by the seam: two fragments
        line("three four five", 300, 650, right, y0=200),
        line("first", 20, 80, left),
    ]
    out = merge_tiled_lines(lines, 700, 400)
    assert [ln.text for ln in out] == ["first", "whole line", "one two three four five"]
    np.testing.assert_allclose(out[2].quad[[0, 2]], [[50, 200], [650, 220]])


def test_read_page_tiles_map_back_to_page(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stubbed generation: each tile 'reads' the page lines it sees, cut at its edges."""
    from docrag.recognize.florence2 import Florence2Recognizer

    W, H, T, O = 1000, 600, 400, 80
    words = [f"w{i}" for i in range(20)]
    page_lines = [  # (text, x0, y0, x1, y1); the last crosses every column
        ("alpha beta", 20, 20, 290, 50),
        ("inside overlap", 320, 100, 390, 130),
        (" ".join(words), 50, 300, 850, 330),
    ]

    def answer(tile: tuple[int, int, int, int]) -> list[tuple[str, float]]:
        tx0, ty0, tx1, ty1 = tile
        out = []
        for text, x0, y0, x1, y1 in page_lines:
            if y0 < ty0 or y1 > ty1 or x1 <= tx0 or x0 >= tx1:
                continue
            ws = text.split()
            pitch = (x1 - x0) / len(ws)
            seen = [w for i, w in enumerate(ws) if x0 + i * pitch >= tx0 and x0 + (i + 1) * pitch <= tx1]
            a, b = max(x0, tx0), min(x1, tx1)
            bx = [round((v - tx0) / (tx1 - tx0) * 1000) for v in (a, b)]
            by = [round((v - ty0) / (ty1 - ty0) * 1000) for v in (y0, y1)]
            locs = "".join(f"<loc_{v}>" for v in (bx[0], by[0], bx[1], by[0], bx[1], by[1], bx[0], by[1]))
            out.append((" ".join(seen) + locs, 0.8))
        return out

    tiles = tile_grid(W, H, T, O)
    rec = Florence2Recognizer(tile_size=T, tile_overlap=O)

    def fake_generate(images: list[np.ndarray], task: str) -> list[list[tuple[str, float]]]:
        assert task == "<OCR_WITH_REGION>" and len(images) == len(tiles)
        assert [im.shape[:2] for im in images] == [(t[3] - t[1], t[2] - t[0]) for t in tiles]
        return [answer(t) for t in tiles]

    monkeypatch.setattr(rec, "_generate", fake_generate)
    got = rec.read_page(_page(H, W))
    _check(got, H, W)
    assert [r.text for r in got] == ["alpha beta", "inside overlap", " ".join(words)]
    for r, (_, x0, y0, x1, y1) in zip(got, page_lines):
        np.testing.assert_allclose(r.quad.min(0), [x0, y0], atol=1.5)
        np.testing.assert_allclose(r.quad.max(0), [x1, y1], atol=1.5)


# ---------------------------------------------------------------- the tiny model, end to end


def test_tiny_model_dir_is_consistent(tiny_dir: Path) -> None:
    from transformers import Florence2Processor

    processor = Florence2Processor.from_pretrained(tiny_dir)
    config = json.loads((tiny_dir / "config.json").read_text())
    assert processor.num_image_tokens == (IMAGE_SIZE // 32) ** 2 + 1
    assert processor.image_token_id == config["image_token_id"]


def test_read_page_single_tile(tiny_dir: Path) -> None:
    rec = get_recognizer("florence2", model=str(tiny_dir))
    assert rec.page_mode
    h, w = 200, 300
    got = rec.read_page(_page(h, w))
    _check(got, h, w)
    assert [r.text for r in got] == ["hello", "world"]
    np.testing.assert_allclose(got[0].quad, _quad(HELLO_BINS, w, h), atol=1e-3)
    np.testing.assert_allclose(got[1].quad, _quad(WORLD_BINS, w, h), atol=1e-3)
    assert all(r.confidence > 0.9 for r in got)  # the scripted tokens are near certain


@pytest.mark.parametrize("num_beams", [1, 3])
def test_read_page_tiled_maps_each_tile(tiny_dir: Path, num_beams: int) -> None:
    rec = _recognizer(tiny_dir, tile_size=200, tile_overlap=40, batch_size=3, num_beams=num_beams)
    h, w = 200, 360  # two tiles: x 0..200 and 160..360
    got = rec.read_page(_page(h, w))
    _check(got, h, w)
    assert [r.text for r in got] == ["hello", "hello", "world", "world"]
    want = [
        _quad(HELLO_BINS, 200, h),
        _quad(HELLO_BINS, 200, h, 160),
        _quad(WORLD_BINS, 200, h),
        _quad(WORLD_BINS, 200, h, 160),
    ]
    for r, q in zip(got, want):
        np.testing.assert_allclose(r.quad, q, atol=1e-3)


def test_read_page_truncated_answer_gives_no_lines(tiny_dir: Path) -> None:
    rec = _recognizer(tiny_dir, max_new_tokens=5)
    assert rec.read_page(_page(64, 64)) == []


def test_recognize_crops(tiny_dir: Path) -> None:
    rec = _recognizer(tiny_dir, mode="crops", batch_size=2)
    assert not rec.page_mode
    image = _page(120, 200)
    quads = np.array(
        [
            [[10, 10], [150, 10], [150, 40], [10, 40]],
            [[20, 50], [190, 55], [188, 80], [18, 75]],  # slanted
            [[160, 20], [180, 20], [180, 115], [160, 115]],  # vertical: read turned both ways
        ],
        np.float32,
    )
    got = rec.recognize(image, quads)
    assert len(got) == 3
    _check(got, 120, 200)
    for r, q in zip(got, quads):
        assert r.text == "hello world"  # <OCR> answers lose their <loc_*> tokens
        np.testing.assert_array_equal(r.quad, q)
    assert rec.recognize(image, np.zeros((0, 4, 2), np.float32)) == []
    with pytest.raises(ValueError):
        rec.recognize(image[:, :, 0], quads)


# ---------------------------------------------------------------- errors


def test_missing_dir_raises_model_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-florence"
    rec = get_recognizer("florence2", model=str(missing))  # construction is lazy
    with pytest.raises(ModelError, match="no-such-florence") as info:
        rec.read_page(_page(32, 32))
    assert "--local-dir" in str(info.value)


def test_dir_without_config_raises_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="config.json"):
        _recognizer(tmp_path).read_page(_page(32, 32))


def test_remote_code_checkpoint_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "florence2", "auto_map": {}}))
    with pytest.raises(ModelError, match="florence-community"):
        _recognizer(tmp_path).read_page(_page(32, 32))


def test_microsoft_hub_id_is_refused_before_download() -> None:
    from docrag.recognize.florence2 import Florence2Recognizer

    with pytest.raises(ModelError, match="florence-community"):
        Florence2Recognizer(model="microsoft/Florence-2-base").read_page(_page(32, 32))


def test_unknown_hub_id_raises_model_error() -> None:
    from docrag.recognize.florence2 import Florence2Recognizer

    rec = Florence2Recognizer(model="docrag-nobody/no-such-model", local_files_only=True)
    with pytest.raises(ModelError, match="docrag-nobody/no-such-model"):
        rec.recognize(_page(32, 32), np.array([[[0, 0], [10, 0], [10, 10], [0, 10]]], np.float32))


def test_cli_ingest_with_a_florence2_model_directory(tiny_dir: Path, tmp_path: Path, capsys) -> None:
    """`docrag ingest --ocr-engine florence2 --ocr-model DIR` runs the whole pipeline on a scan."""
    import json

    from docrag.cli import main

    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "data"
    index = tmp_path / "ix"
    main(["ingest", str(fixtures / "page_scan.png"), "--index", str(index), "-q", "--json",
          "--ocr-engine", "florence2", "--ocr-model", str(tiny_dir), "--embedder", "fake-hash", "--no-orientation"])
    report = json.loads(capsys.readouterr().out)
    assert report["totals"]["indexed"] == 1 and report["totals"]["pages_ocr"] == 1
    assert report["totals"]["chunks"] >= 1  # the scripted tiny model writes "hello ... world"
