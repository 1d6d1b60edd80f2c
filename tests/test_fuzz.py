"""Fuzzing the input layer: mutated PDFs and images never crash, hang or leak a traceback.

Small valid seeds are made here (a born-digital PDF, a PDF with an image, PNG,
JPEG, two-frame TIFF) and mutated by hypothesis: byte flips, truncation,
spliced ranges, swapped object bodies, broken xrefs, a page tree that loops,
and decompression bombs (huge declared image sizes). Every mutant must either
be refused with one ``LoadError`` line naming the file, or be read page by page
without any other exception. ``derandomize=True`` makes CI runs reproducible.
"""

from __future__ import annotations

import contextlib
import faulthandler
import io
import re
import signal
import struct
import subprocess
import sys
import time
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator

import pymupdf
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from docrag.errors import LoadError
from docrag.io import open_document

# Corrupt TIFF tags are warned about by PIL itself; what we check is what escapes docrag.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL.TiffImagePlugin")

IO_EXAMPLES = 500
INGEST_EXAMPLES = 60
EXAMPLE_SECONDS = 10  # a hang is a failure, not a slow test

pymupdf.TOOLS.mupdf_display_errors(False)  # MuPDF's own chatter is not what we check
pymupdf.TOOLS.mupdf_display_warnings(False)


# -- seeds --------------------------------------------------------------------


def _png_bytes(size: tuple[int, int] = (24, 16)) -> bytes:
    img = Image.new("RGB", size, (240, 240, 240))
    for x in range(size[0]):
        img.putpixel((x, x % size[1]), (20, 60, 200))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@lru_cache(maxsize=None)
def seeds() -> dict[str, bytes]:
    """name -> bytes of a tiny valid file (a few KB each)."""
    text = pymupdf.open()
    for n in (1, 2):
        page = text.new_page(width=300, height=200)
        page.insert_text((30, 50), f"Page {n}: revenue grew by 12 percent in fiscal 2023.")
        page.insert_text((30, 80), "Fleet size and operating costs are summarized here.")
    image_pdf = pymupdf.open()
    page = image_pdf.new_page(width=300, height=200)
    page.insert_text((30, 40), "Figure 1 shows the fleet.")
    page.insert_image(pymupdf.Rect(30, 60, 150, 140), stream=_png_bytes())
    base = Image.open(io.BytesIO(_png_bytes()))
    jpeg, tiff = io.BytesIO(), io.BytesIO()
    base.save(jpeg, "JPEG", quality=80)
    base.save(tiff, "TIFF", save_all=True, append_images=[base.rotate(90, expand=True)])
    return {
        "text.pdf": text.tobytes(),
        "image.pdf": image_pdf.tobytes(),
        "plain.png": _png_bytes(),
        "photo.jpg": jpeg.getvalue(),
        "frames.tiff": tiff.getvalue(),
    }


# -- mutations ----------------------------------------------------------------

Mutation = Callable[[st.DrawFn, bytes], bytes]
_OBJ = re.compile(rb"(\d+) 0 obj(.*?)endobj", re.S)


def _flip(draw: st.DrawFn, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        i = draw(st.integers(0, len(out) - 1))
        out[i] ^= draw(st.integers(1, 255))
    return bytes(out)


def _truncate(draw: st.DrawFn, data: bytes) -> bytes:
    return data[: draw(st.integers(1, max(1, len(data) - 1)))]


def _range(draw: st.DrawFn, data: bytes) -> tuple[int, int]:
    i = draw(st.integers(0, len(data) - 1))
    return i, min(len(data), i + draw(st.integers(1, 256)))


def _insert(draw: st.DrawFn, data: bytes) -> bytes:
    i = draw(st.integers(0, len(data)))
    return data[:i] + draw(st.binary(min_size=1, max_size=64)) + data[i:]


def _duplicate(draw: st.DrawFn, data: bytes) -> bytes:
    i, j = _range(draw, data)
    k = draw(st.integers(0, len(data)))
    return data[:k] + data[i:j] + data[k:]


def _delete(draw: st.DrawFn, data: bytes) -> bytes:
    i, j = _range(draw, data)
    return (data[:i] + data[j:]) or data[:1]


def _swap_objects(draw: st.DrawFn, data: bytes) -> bytes:
    """Replace one ``obj ... endobj`` body with another object's."""
    objs = list(_OBJ.finditer(data))
    if len(objs) < 2:
        return data
    a, b = draw(st.sampled_from(objs)), draw(st.sampled_from(objs))
    return data[: a.start(2)] + b.group(2) + data[a.end(2):]


def _corrupt_xref(draw: st.DrawFn, data: bytes) -> bytes:
    """Garble the xref table's offsets, or point ``startxref`` somewhere else."""
    how = draw(st.sampled_from(["offsets", "startxref", "drop"]))
    if how == "startxref":
        return re.sub(rb"startxref\s+\d+", b"startxref\n%d" % draw(st.integers(0, 10 * len(data))), data)
    if how == "drop":
        return re.sub(rb"xref\n.*?trailer", b"trailer", data, count=1, flags=re.S)
    out = bytearray(data)
    for m in re.finditer(rb"(\d{10}) \d{5} n", data):
        if draw(st.booleans()):
            out[m.start(1): m.end(1)] = b"%010d" % draw(st.integers(0, 10 * len(data)))
    return bytes(out)


def _page_tree_loop(draw: st.DrawFn, data: bytes) -> bytes:
    """Make ``/Pages /Kids`` (or a page's ``/Parent``) point back into the tree."""
    pages = re.search(rb"(\d+) 0 obj\s*<<[^>]*?/Type\s*/Pages", data, re.S)
    if not pages:
        return data
    me = pages.group(1) + b" 0 R"
    if draw(st.booleans()):  # add the node to its own kids, keep /Count
        return re.sub(rb"/Kids\s*\[", b"/Kids[" + me + b" ", data, count=1)
    # replace the first kid by the node itself (same length keeps the xref valid)
    def swap(m: re.Match[bytes]) -> bytes:
        return b"/Kids[" + me.ljust(len(m.group(1))) + m.group(2)
    return re.sub(rb"/Kids\s*\[(\d+ 0 R)(.*?\])", swap, data, count=1, flags=re.S)


def _huge_xobject(draw: st.DrawFn, data: bytes) -> bytes:
    side = draw(st.sampled_from([b"9000", b"60000", b"2147483647", b"-5", b"0"]))
    key = draw(st.sampled_from([b"/Width", b"/Height", b"both"]))
    for k in ([b"/Width", b"/Height"] if key == b"both" else [key]):
        data = re.sub(k + rb"\s+\d+", k + b" " + side, data, count=1)
    return data


def _huge_png(draw: st.DrawFn, data: bytes) -> bytes:
    """Declare a huge size in IHDR (a decompression bomb); fix the CRC or not."""
    w = draw(st.sampled_from([9000, 30000, 100_000, 2**31 - 1, 0]))
    h = draw(st.sampled_from([9000, 30000, 100_000, 1]))
    ihdr = data[12:16] + struct.pack(">II", w, h) + data[24:29]
    crc = struct.pack(">I", zlib.crc32(ihdr)) if draw(st.booleans()) else data[29:33]
    return data[:12] + ihdr + crc + data[33:]


def _huge_jpeg(draw: st.DrawFn, data: bytes) -> bytes:
    i = data.find(b"\xff\xc0")
    if i < 0:
        return data
    h, w = draw(st.sampled_from([9000, 65535, 0])), draw(st.sampled_from([9000, 65535, 1]))
    return data[: i + 5] + struct.pack(">HH", h, w) + data[i + 9:]


GENERIC: list[Mutation] = [_flip, _truncate, _insert, _duplicate, _delete]
SPECIFIC: dict[str, list[Mutation]] = {
    "pdf": [_swap_objects, _corrupt_xref, _page_tree_loop, _huge_xobject],
    "png": [_huge_png],
    "jpg": [_huge_jpeg],
    "tiff": [],
}


@st.composite
def mutants(draw: st.DrawFn) -> tuple[str, bytes]:
    """(seed name, mutated bytes): one to three mutations of one seed."""
    name = draw(st.sampled_from(sorted(seeds())))
    data = seeds()[name]
    ops = GENERIC + SPECIFIC[name.rsplit(".", 1)[1]] * 2  # weight the structural ones up
    for _ in range(draw(st.integers(1, 3))):
        data = draw(st.sampled_from(ops))(draw, data)
    return name, data


# -- guards ---------------------------------------------------------------------


@contextlib.contextmanager
def time_limit(seconds: int = EXAMPLE_SECONDS) -> Iterator[None]:
    """Fail an example that runs too long; a hard backstop kills a hang inside C code."""

    def on_alarm(signum: int, frame: object) -> None:
        raise TimeoutError(f"example ran over {seconds} s (a hang)")

    # A C-level hang never returns to Python for the alarm: faulthandler then kills
    # the run with the stack. The outer timer (pytest-timeout's) is put back after.
    old = signal.signal(signal.SIGALRM, on_alarm)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    start = time.monotonic()
    faulthandler.dump_traceback_later(6 * seconds, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        if outer:
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - start), 0.001))


def _write(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / f"mutant-{name}"
    path.write_bytes(data)
    return path


def _assert_one_line_naming(exc: LoadError, path: Path) -> None:
    message = str(exc)
    assert "\n" not in message and str(path) in message, message


def read_everything(path: Path) -> None:
    """Open ``path`` and touch every page the way ingest does; only LoadError may escape."""
    try:
        doc = open_document(path)
    except LoadError as exc:
        _assert_one_line_naming(exc, path)
        return
    with doc:
        doc.metadata()
        pages = iter(doc.pages())
        while True:
            try:
                page = next(pages)
            except StopIteration:
                break
            except LoadError as exc:
                _assert_one_line_naming(exc, path)
                break
            for step in (page.words, page.word_groups, page.image_boxes, lambda: page.render(dpi=72)):
                try:
                    step()
                except LoadError as exc:
                    _assert_one_line_naming(exc, path)


# -- property 1: the io layer -------------------------------------------------------


@settings(max_examples=IO_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
@given(mutant=mutants())
def test_io_layer_survives_mutants(mutant: tuple[str, bytes], tmp_path: Path) -> None:
    name, data = mutant
    path = _write(tmp_path, name, data)
    with time_limit():
        read_everything(path)


# -- property 2: ingest and the CLI ---------------------------------------------------------


def _options():  # type: ignore[no-untyped-def]
    from docrag.config import IngestOptions

    return IngestOptions(ocr="never", embedder="fake-hash", figures=False)


def _counts(index_dir: Path, paths: list[Path]) -> tuple[list[object], dict[str, int]]:
    from docrag import Index

    with Index(index_dir, _options()) as index:
        report = index.ingest(paths)
        stats = index.info()
    return report.files, {k: stats[k] for k in ("documents", "pages", "chunks")}


@lru_cache(maxsize=None)
def _baseline(tmp: str) -> dict[str, int]:
    files, counts = _counts(Path(tmp) / "ix", [_good_file(Path(tmp))])
    assert files[0].status == "indexed"  # type: ignore[attr-defined]
    return counts


def _good_file(tmp: Path) -> Path:
    path = tmp / "good.pdf"
    if not path.exists():
        path.write_bytes(seeds()["text.pdf"])
    return path


def _cli(argv: list[str]) -> tuple[int, str]:
    from docrag.cli import main

    err = io.StringIO()
    code = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            main(argv)
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, err.getvalue()


@settings(max_examples=INGEST_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
@given(mutant=mutants())
def test_ingest_and_cli_survive_mutants(mutant: tuple[str, bytes], tmp_path_factory: pytest.TempPathFactory) -> None:
    name, data = mutant
    shared = tmp_path_factory.getbasetemp() / "fuzz-good"
    shared.mkdir(exist_ok=True)
    baseline = _baseline(str(shared))
    tmp = tmp_path_factory.mktemp("ingest")
    bad = _write(tmp, name, data)
    with time_limit(3 * EXAMPLE_SECONDS):
        files, counts = _counts(tmp / "ix", [_good_file(shared), bad])
        good, result = files
        assert good.status == "indexed"  # type: ignore[attr-defined]
        if result.status in ("failed", "unchanged"):  # type: ignore[attr-defined]
            assert counts == baseline, (result.error, counts)  # type: ignore[attr-defined]
        if result.status == "failed":  # type: ignore[attr-defined]
            assert "\n" not in result.error and str(bad) in result.error  # type: ignore[attr-defined]
        code, err = _cli(["ingest", str(bad), "--index", str(tmp / "cli-ix"), "-q",
                          "--ocr", "never", "--embedder", "fake-hash", "--no-figures"])
    assert "Traceback" not in err, err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    if code:
        assert len(errors) == 1 and str(bad) in errors[0], err
    else:
        assert not errors, err


# -- the bugs the fuzzer found, one input each ------------------------------------------


def _tiff_frame2_entry(data: bytes, tag: int) -> int:
    """Offset of ``tag``'s 12-byte entry in the second IFD of a little-endian TIFF."""
    ifd0 = struct.unpack("<I", data[4:8])[0]
    n0 = struct.unpack("<H", data[ifd0: ifd0 + 2])[0]
    ifd1 = struct.unpack("<I", data[ifd0 + 2 + 12 * n0: ifd0 + 6 + 12 * n0])[0]
    for i in range(struct.unpack("<H", data[ifd1: ifd1 + 2])[0]):
        entry = ifd1 + 2 + 12 * i
        if struct.unpack("<H", data[entry: entry + 2])[0] == tag:
            return entry
    raise AssertionError(f"no tag {tag} in the second IFD")


def test_page_tree_loop_is_cut_and_reported(tmp_path: Path) -> None:
    # /Kids[4 0 R 9 0 R] -> /Kids[2 0 R 9 0 R]: the Pages node is its own kid. MuPDF
    # refused every page ("cycle in page tree") and the FzErrorFormat escaped ingest.
    data = seeds()["text.pdf"]
    pages = re.search(rb"(\d+) 0 obj\s*<<\s*/Type\s*/Pages", data)
    assert pages
    loop = _write(tmp_path, "loop.pdf", re.sub(rb"/Kids\[\d+ 0 R", b"/Kids[" + pages.group(1) + b" 0 R", data, count=1))
    with open_document(loop) as doc:
        assert doc.page_count == 1
        page = next(doc.pages())
        assert "Page 2:" in " ".join(w.text for w in page.words())
        assert any("page tree loops" in w and "1 page(s) recovered" in w for w in page.warnings)
    files, counts = _counts(tmp_path / "ix", [loop])
    assert files[0].status == "indexed" and counts["pages"] == 1  # type: ignore[attr-defined]
    assert any("page tree loops" in w for w in files[0].warnings)  # type: ignore[attr-defined]


def test_repaired_xref_is_kept_with_a_warning(tmp_path: Path) -> None:
    broken = re.sub(rb"startxref\s+\d+", b"startxref\n0", seeds()["text.pdf"])
    path = _write(tmp_path, "xref.pdf", broken)
    with open_document(path) as doc:
        pages = list(doc.pages())
        assert len(pages) == 2 and pages[1].words()
        assert pages[0].warnings == ["repaired: broken xref table rebuilt from the objects; 2 page(s) recovered"]
        assert not pages[1].warnings  # said once per file


def test_unreadable_tiff_frame_is_one_failed_page(tmp_path: Path) -> None:
    # The second frame's strip points past the end of the file: PIL failed while
    # the page was being constructed, so the LoadError escaped Index.ingest.
    data = bytearray(seeds()["frames.tiff"])
    entry = _tiff_frame2_entry(bytes(data), 273)  # StripOffsets, one strip: value inline
    data[entry + 8: entry + 12] = struct.pack("<I", 10**6)
    path = _write(tmp_path, "strip.tiff", bytes(data))
    files, counts = _counts(tmp_path / "ix", [path])
    result = files[0]
    assert result.status == "indexed" and counts["documents"] == 1  # type: ignore[attr-defined]
    assert len(result.page_errors) == 1 and "(page 2): image frame unreadable" in result.page_errors[0]  # type: ignore[attr-defined]


def test_broken_tiff_directory_keeps_the_frames_before_it(tmp_path: Path) -> None:
    # No ImageWidth in the second IFD: ``n_frames`` raised TypeError("Missing dimensions").
    data = bytearray(seeds()["frames.tiff"])
    entry = _tiff_frame2_entry(bytes(data), 256)
    data[entry: entry + 2] = struct.pack("<H", 999)
    path = _write(tmp_path, "ifd.tiff", bytes(data))
    with open_document(path) as doc:
        assert doc.page_count == 1
        page = next(doc.pages())
        assert page.render().image.shape == (16, 24, 3)
        assert "frame count unreadable" in page.warnings[0]


# Peak memory from VmHWM, not ru_maxrss: ru_maxrss survives exec, so a child of a
# large pytest process would report the parent's size at fork.
BOMB_SCRIPT = """
import re, sys
from docrag.io import open_document
with open_document(sys.argv[1]) as doc:
    page = doc.page(1)
    shape = page.render().image.shape
hwm_kb = int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
print(shape, page.warnings, hwm_kb // 1024)
"""


def test_jpeg_bomb_is_decoded_downscaled(tmp_path: Path) -> None:
    # A 2 KB JPEG declaring 20000x15000 px (300 MP, under the refusal limit) was
    # decoded in full and copied: about 3 GB resident. Now it is decoded at 1/4 scale.
    data = seeds()["photo.jpg"]
    sof = data.find(b"\xff\xc0")
    path = _write(tmp_path, "bomb.jpg", data[: sof + 5] + struct.pack(">HH", 15000, 20000) + data[sof + 9:])
    out = subprocess.run([sys.executable, "-c", BOMB_SCRIPT, str(path)], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert out.startswith("(3750, 5000, 3)") and "downscaled 4x" in out, out
    rss_mb = int(out.split()[-1])
    assert rss_mb < 1200, f"{rss_mb} MB resident for a 2 KB file"


def test_png_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    data = seeds()["plain.png"]
    ihdr = data[12:16] + struct.pack(">II", 100_000, 100_000) + data[24:29]
    path = _write(tmp_path, "bomb.png", data[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + data[33:])
    with pytest.raises(LoadError, match="10000 MP") as info:
        open_document(path)
    _assert_one_line_naming(info.value, path)
