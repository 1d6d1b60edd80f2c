"""The ONNX MiniLM embedder: same vectors as the torch path, cached export, lazy imports."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]

TEXTS = [
    "",
    "a",
    "Revenue",
    "What was Northwind Logistics' consolidated revenue in fiscal 2023?",
    "Consolidated revenue reached $4.82 billion, up 7.4% from $4.49 billion in fiscal 2022.",
    "1,150 battery-electric delivery vans; 388 trucks; 41 depots; 2,300 tires at $412 each.",
    "WO-55817 / ext. 2219 / 06:00-18:00 / doors 15 & 16",
    "Dock door 14 leveler replacement",
    "Studded tyres were fitted to 388 trucks by 15 November.",
    "Ünïcödé téxt — with accents, “quotes” and an emoji 🚚.",
    "TABLE | Region | Q1 | Q2 |\n| North | 12.5 | 13.1 |\n| South | 9.8 | 10.4 |",
    "   leading and trailing spaces   ",
    "UPPER CASE HEADING FOR A SECTION",
] + [
    f"Depot {i} handled {1000 + 37 * i} shipments in week {i % 52 + 1}; on-time rate {90 + i % 10}.{i % 7}%."
    for i in range(17)
] + [
    " ".join(["The Nordic division runs 41 depots and employs 1,260 drivers across Norway, Sweden and Finland."] * k)
    for k in range(1, 11)
] + [
    "word " * 400,  # far past 256 tokens: truncated on both paths
    "Northwind Logistics Annual Report 2023. " * 60,
    "x" * 3000,
    "12345678901234567890 " * 50,
] + [
    f"Chunk {i}: " + "Retreads come from the Ridgeline plant in Joplin, Missouri. " * (i % 6 + 1)
    for i in range(6)
]


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache of this session's own, seeded with the machine's export of MiniLM (made now if missing:
    the session index uses it too), so the model is traced and quantized once per machine, not again
    per session. Exporting itself is the subject of the corrupt-cache and two-process tests."""
    from docrag.embed.onnx import export_model
    from docrag.embed.sentence import minilm_path

    path = tmp_path_factory.mktemp("onnx-cache")
    machine = export_model(minilm_path(), quantize=True).parent
    shutil.copytree(machine, path / "onnx" / machine.name)
    old = os.environ.get("DOCRAG_CACHE")
    os.environ["DOCRAG_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("DOCRAG_CACHE", None)
    else:
        os.environ["DOCRAG_CACHE"] = old


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sentence-transformers folder shaped like MiniLM (its tokenizer and pooling) holding a tiny
    randomly initialised BERT (2 layers of 32): exports in a fraction of MiniLM's time, for the
    tests about exporting itself (the cache, its lock, its repair)."""
    import torch
    from transformers import BertConfig, BertModel

    from docrag.embed.sentence import minilm_path

    folder = tmp_path_factory.mktemp("tiny-minilm")
    shutil.copytree(minilm_path(), folder, dirs_exist_ok=True)
    config = BertConfig.from_pretrained(folder)
    config.update({"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64})
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)  # replaces model.safetensors and config.json
    return folder


@pytest.fixture(scope="session")
def torch_vectors() -> np.ndarray:
    from docrag.embed import get_embedder

    return get_embedder("minilm").embed_documents(TEXTS)


@pytest.fixture(scope="session")
def fp32(onnx_cache: Path):
    from docrag.embed.onnx import OnnxEmbedder

    return OnnxEmbedder(num_threads=1, batch_size=8)


@pytest.fixture(scope="session")
def int8(onnx_cache: Path):
    from docrag.embed.onnx import OnnxEmbedder

    return OnnxEmbedder(quantize=True, num_threads=1, batch_size=8)


def test_texts_cover_the_truncation_length(fp32) -> None:
    lengths = fp32.token_lengths(TEXTS)
    assert len(TEXTS) >= 50
    assert lengths.max() == fp32.max_tokens == 256
    assert lengths.min() == 2  # the empty string: [CLS] [SEP]


def test_fp32_matches_torch(fp32, torch_vectors: np.ndarray) -> None:
    vecs = fp32.embed_documents(TEXTS)
    assert vecs.shape == (len(TEXTS), 384) and vecs.dtype == np.float32 and vecs.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    cos = (vecs * torch_vectors).sum(1)
    assert cos.min() >= 0.999, cos.min()  # measured: ≥ 0.99999 on every text


def test_int8_close_to_torch(int8, torch_vectors: np.ndarray) -> None:
    cos = (int8.embed_documents(TEXTS) * torch_vectors).sum(1)
    print(f"int8 cosine to torch: mean {cos.mean():.4f} min {cos.min():.4f}")
    # Measured on these texts: mean ~0.99, min ~0.97 (the shortest texts move most).
    assert cos.mean() >= 0.98, cos.mean()
    assert cos.min() >= 0.95, cos.min()


def test_int8_vector_of_a_text_does_not_depend_on_what_it_is_embedded_with(int8) -> None:
    # Dynamic int8 quantizes a run's activations with one range: batched, a text's vector moved with
    # its batch-mates (cosine to itself 0.986 when the order changed). Alone it is always the same.
    forward = int8.embed_documents(TEXTS)
    backward = int8.embed_documents(TEXTS[::-1])[::-1]
    alone = np.stack([int8.embed_query(t) for t in TEXTS[:12]])
    assert ((forward * backward).sum(1) > 0.99999).all()
    assert ((forward[:12] * alone).sum(1) > 0.99999).all()


def test_a_query_run_on_all_threads_gets_its_document_vector(int8) -> None:
    from docrag.embed.onnx import OnnxEmbedder
    from docrag.retrieve import embed_queries

    emb = OnnxEmbedder(quantize=True, num_threads=2)  # queries on a 2-thread session, documents one per thread
    docs = emb.embed_documents(TEXTS[:8])
    queries = np.stack([emb.embed_query(t) for t in TEXTS[:8]])
    assert emb._query_session is not None
    assert ((docs * queries).sum(1) > 0.99999).all()
    both = embed_queries(emb, TEXTS[:2])  # a query and its expansion: one per thread, the same vectors
    assert ((np.stack(both) * queries[:2]).sum(1) > 0.99999).all()
    # While other searches embed (a busy server): one after the other on the caller's thread, the same vectors.
    busy = embed_queries(emb, TEXTS[:3], alone=False)
    assert ((np.stack(busy) * queries[:3]).sum(1) > 0.99999).all()
    assert ((embed_queries(emb, TEXTS[:1], alone=False)[0] * queries[0]).sum() > 0.99999)


def test_a_busy_search_embeds_its_texts_on_its_own_thread(monkeypatch) -> None:
    import threading

    import docrag.retrieve as retrieve

    class Recorder:
        dim = 4

        def __init__(self) -> None:
            self.threads: list[str] = []

        def embed_query(self, text: str) -> np.ndarray:
            self.threads.append(threading.current_thread().name)
            return np.ones(4, np.float32) / 2

    emb = Recorder()
    retrieve.embed_queries(emb, ["q", "expansion", "more"], alone=False)  # type: ignore[arg-type]
    assert emb.threads == [threading.current_thread().name] * 3
    emb.threads.clear()
    retrieve.embed_queries(emb, ["q", "expansion"], alone=True)  # type: ignore[arg-type]
    mine, helper = sorted(emb.threads, key=lambda name: name.startswith("docrag-query"))  # in either order
    assert mine == threading.current_thread().name and helper.startswith("docrag-query")
    with retrieve._searching() as first:
        with retrieve._searching() as second:
            assert (first, second) == (True, False)
    with retrieve._searching() as again:
        assert again


def test_names_are_distinct(fp32, int8) -> None:
    assert (fp32.name, int8.name) == ("minilm-onnx", "minilm-onnx-int8")
    assert fp32.dim == int8.dim == 384


def test_order_is_restored_after_length_sorting(fp32) -> None:
    texts = TEXTS[::-1]
    batched = fp32.embed_documents(texts)  # many batches of 8, sorted by length inside
    one_by_one = np.stack([fp32.embed_query(t) for t in texts])
    assert ((batched * one_by_one).sum(1) > 0.9999).all()


def test_concurrent_batches_keep_input_order(fp32, torch_vectors: np.ndarray) -> None:
    from docrag.embed.onnx import OnnxEmbedder

    two = OnnxEmbedder(num_threads=2, batch_size=3)  # ~18 batches, two at a time, finishing out of order
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(TEXTS))
    vecs = two.embed_documents([TEXTS[i] for i in perm])
    cos = (vecs * torch_vectors[perm]).sum(1)
    assert cos.min() >= 0.999, cos.min()


def test_batches_are_sorted_bounded_and_cover_every_row(fp32) -> None:
    from docrag.embed.onnx import OnnxEmbedder

    emb = OnnxEmbedder.__new__(OnnxEmbedder)
    lengths = fp32.token_lengths(TEXTS)
    for batch_size, threads, budget in ((32, 2, 2048), (8, 2, 2048), (8, 1, 512), (4, 3, 100), (100, 2, 10**6)):
        emb.batch_size, emb.num_threads, emb.max_batch_tokens = batch_size, threads, budget
        batches = emb.batches(lengths)
        rows = np.concatenate(batches)
        assert sorted(rows.tolist()) == list(range(len(TEXTS)))
        assert (np.diff(lengths[rows]) <= 0).all()  # longest first: each batch pads to its own longest
        assert max(len(b) for b in batches) <= min(batch_size, -(-len(TEXTS) // threads))  # every thread gets work
        assert all(len(b) == 1 or len(b) * lengths[b].max() <= budget for b in batches)  # memory per run bounded


def test_threads_follow_docrag_threads(onnx_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from docrag.config import default_threads as _default_threads

    monkeypatch.setenv("DOCRAG_THREADS", "1")  # what a page worker with one core gets
    assert _default_threads() == 1
    monkeypatch.delenv("DOCRAG_THREADS")
    assert _default_threads() == len(os.sched_getaffinity(0))


def test_default_embedder_is_int8_onnx() -> None:
    import inspect

    from docrag.config import IngestOptions
    from docrag.embed import get_embedder

    assert IngestOptions().embedder == "minilm-onnx-int8"
    assert inspect.signature(get_embedder.__wrapped__).parameters["name"].default == "minilm-onnx-int8"


def test_empty_input(fp32) -> None:
    assert fp32.embed_documents([]).shape == (0, 384)


def test_registered_names(onnx_cache: Path) -> None:
    from docrag.embed import EMBEDDERS
    from docrag.embed import onnx  # noqa: F401  (registers the names)

    assert {"minilm-onnx", "minilm-onnx-int8"} <= set(EMBEDDERS.names())
    emb = EMBEDDERS.create("minilm-onnx", batch_size=4, num_threads=1)
    assert emb.name == "minilm-onnx" and emb.batch_size == 4


def test_cache_is_reused(fp32, int8) -> None:
    from docrag.embed.onnx import OnnxEmbedder

    stamps = {p: p.stat().st_mtime_ns for p in (fp32.model_path, int8.model_path)}
    again = OnnxEmbedder(quantize=True, num_threads=1)
    assert again.model_path == int8.model_path
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_residual_adds_stay_apart_from_their_layer_norms(fp32, int8, monkeypatch: pytest.MonkeyPatch) -> None:
    """onnxruntime's CPU SkipLayerNormalization was a fifth of the encoder's time (see ``_fuse``):
    neither the exported files nor the sessions the embedder opens fuse it; attention still fuses."""
    import onnx
    import onnxruntime as ort

    for emb in (fp32, int8):
        ops = {n.op_type for n in onnx.load(str(emb.model_path)).graph.node}
        assert "SkipLayerNormalization" not in ops and "LayerNormalization" in ops, ops
        assert ops & {"Attention", "QAttention"}, ops
    seen: list[dict] = []
    real = ort.InferenceSession

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", spy)
    int8._open(1)
    assert "SkipLayerNormFusion" in seen[0]["disabled_optimizers"]


def test_cache_is_keyed_by_weights_and_recipe(fp32, onnx_cache: Path) -> None:
    assert fp32.model_path.parent.parent == onnx_cache / "onnx"
    assert len(fp32.model_path.parent.name) == 16


def test_corrupt_cache_is_exported_again(tiny_model: Path, tmp_path: Path) -> None:
    from docrag.embed.onnx import OnnxEmbedder, export_model

    cache = tmp_path / "cache"  # an explicit cache_dir holds the model folders directly
    target = export_model(tiny_model, quantize=True, cache_dir=cache)
    size = target.stat().st_size
    target.write_bytes(target.read_bytes()[: size // 2])  # truncated, as by a killed writer
    assert export_model(tiny_model, quantize=True, cache_dir=cache) == target
    assert target.stat().st_size == size
    emb = OnnxEmbedder(tiny_model, quantize=True, num_threads=1, cache_dir=cache)
    assert emb.embed_query("hello").shape == (32,)


def test_cache_files_are_replaced_atomically(tmp_path: Path) -> None:
    from docrag.files import replace_atomically

    dest = tmp_path / "model.onnx"
    dest.write_bytes(b"old")

    def crash(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt  # a writer killed midway

    with pytest.raises(KeyboardInterrupt):
        replace_atomically(crash, dest)
    assert dest.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["model.onnx"]
    replace_atomically(lambda tmp: tmp.write_bytes(b"new"), dest)
    assert dest.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["model.onnx"]
    assert dest.stat().st_mode & 0o777 == 0o644  # a shared cache stays readable


def test_two_processes_exporting_at_once(tiny_model: Path, tmp_path: Path) -> None:
    # The fp32 export is made first (valid); both processes need the int8 file: one quantizes
    # under the lock, the other waits and finds it done.
    from docrag.embed.onnx import export_model

    folder = export_model(tiny_model, cache_dir=tmp_path).parent
    code = (
        "import sys; from docrag.embed.onnx import export_model, _valid\n"
        f"p = export_model({str(tiny_model)!r}, quantize=True, cache_dir={str(tmp_path)!r})\n"
        "assert _valid(p); print(p)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outs[0] == outs[1] == str(folder / "model.int8.onnx")
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_import_is_light() -> None:
    code = (
        "import sys, docrag.embed.onnx\n"
        "heavy = [m for m in ('torch', 'onnxruntime', 'transformers', 'onnx') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
