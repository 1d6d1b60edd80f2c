"""Peak memory of ``docrag ingest`` on inputs of extreme size (issue #17 line 5: <= 1.5 GB; a long scan flat).

Each case generates its input into a temporary directory (in a process of its own,
so nothing big is committed and the generator's memory is not counted), then runs
``python -m docrag ingest FILE --index DIR --json`` with default options (``DOCRAG_*``
variables apply) as a child process and measures it:

- ``tree_mb``: peak of the summed RSS of the ingest process and its page workers,
  sampled every 50 ms (``bench/ingest.py``'s :class:`TreeRss`): an upper bound, shared
  pages (the same libraries and model files mapped in three processes) count once per process;
  the figure the verdict uses;
- ``pss_mb``: the same tree's peak PSS (proportional set size: a shared page is divided between
  the processes mapping it), i.e. what the tree really takes from the machine (sampled every 250 ms);
- ``main_mb``: the ingest process's own peak RSS (``VmHWM``, read with each sample: all but the last
  50 ms; ``ru_maxrss`` from ``wait4`` would be the largest of it and its workers);
- ``worker_mb``: the largest page worker's own peak RSS (``VmHWM``, likewise; 0 when pages are read in
  the main process);
- ``s``: wall seconds of the command (model load included); ``pages``, ``chunks``: from its report.

Cases:
  page-digital  one born-digital PDF page of 14,400 x 14,400 pt (200 in) with text and a drawing
  page-scan     one image-only PDF page of 14,400 x 14,400 pt (a 12,000 px square grey scan on it)
  png           a 30,000 x 30,000 px greyscale PNG with text (written in strips, never whole in memory)
  scan-50       a 50-page scanned PDF (the 200-dpi scan fixtures' pages repeated, each page's image its own)
  scan-big      the same with ``--pages-big`` pages (500); flat means its peak is <= 1.2x scan-50's

    case          input                   pages  chunks       s  tree_mb  pss_mb  main_mb  worker_mb  verdict

Usage:
    python bench/memory.py                              # all cases (~25-40 min on 2 cores)
    python bench/memory.py --cases page-digital png     # a subset
    python bench/memory.py --cases scan-50 scan-big --pages-big 150
"""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import TreeRss  # noqa: E402
from machine import machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures" / "data"
CASES = ("page-digital", "page-scan", "png", "scan-50", "scan-big")

# Issue #17 line 5: every case's peak, and the long scan against the short one.
LIMIT_MB = 1.5 * 1024
FLAT_RATIO = 1.2
# 200 inches: MuPDF's largest page is 14,400 pt, the page size CAD plots and maps reach.
HUGE_PT = 14_400
# The scanned huge page's image: 60 dpi over 200 inches, 144 MP of grey (big, yet quick to make).
HUGE_SCAN_PX = 12_000
PNG_PX = 30_000
# Rows per strip when writing the big PNG: 30 MB of grey at a time.
STRIP_ROWS = 1_000
SAMPLE_S = 0.05
# PSS is read every this many samples: /proc/PID/smaps_rollup walks the page tables (costly on 2 cores).
PSS_EVERY = 5


# -- inputs ----------------------------------------------------------------------------------


def make_input(case: str, out: Path, pages_big: int) -> tuple[Path, str]:
    """Write the input file of ``case`` under ``out``; returns its path and a short description."""
    if case == "page-digital":
        return huge_digital_page(out / "huge-digital.pdf"), f"{HUGE_PT} pt page"
    if case == "page-scan":
        return huge_scanned_page(out / "huge-scan.pdf"), f"{HUGE_PT} pt, {HUGE_SCAN_PX} px scan"
    if case == "png":
        return big_png(out / "big.png", PNG_PX), f"{PNG_PX}x{PNG_PX} px PNG"
    pages = 50 if case == "scan-50" else pages_big
    return scanned_pdf(out / f"scan-{pages}.pdf", pages), f"{pages}-page scan"


def huge_digital_page(path: Path) -> Path:
    """One 14,400-pt page: paragraphs of text spread over it and a drawing (boxes, lines, a circle)."""
    import pymupdf

    doc = pymupdf.open()
    page = doc.new_page(width=HUGE_PT, height=HUGE_PT)
    for block in range(6):
        x, y = 400 + (block % 2) * 7000, 600 + (block // 2) * 4600
        lines = [f"Site plan sheet {block + 1}, note {n + 1}: the drainage runs north of the access road "
                 f"and the survey marker stands {n * 12 + 40} metres east." for n in range(12)]
        page.insert_text((x, y), "\n".join(lines), fontsize=60)
    shape = page.new_shape()
    for i in range(20):
        shape.draw_rect(pymupdf.Rect(300 + i * 600, 12000, 800 + i * 600, 13800))
        shape.draw_line((300, 11800 - i * 40), (14000, 11800 - i * 40))
    shape.draw_circle((7200, 7200), 1500)
    shape.finish(color=(0, 0, 0), width=6)
    shape.commit()
    doc.save(path, deflate=True)
    return path


def huge_scanned_page(path: Path) -> Path:
    """One 14,400-pt page holding only a 12,000 px square grey image with text (no text layer)."""
    import io

    import pymupdf

    image = text_image(HUGE_SCAN_PX, HUGE_SCAN_PX, lines=40, size=90)
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    del image
    doc = pymupdf.open()
    page = doc.new_page(width=HUGE_PT, height=HUGE_PT)
    page.insert_image(page.rect, stream=buf.getvalue())
    doc.save(path, deflate=True)
    return path


def text_image(width: int, height: int, lines: int, size: int, first: int = 0):  # -> PIL.Image.Image
    """A white greyscale image with ``lines`` lines of black text, evenly spaced."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=size)
    step = height / max(lines, 1)
    for n in range(lines):
        draw.text((size, int(n * step + step / 3)), f"Line {first + n + 1}: the quarterly survey of the "
                  f"northern basin recorded {37 + n} stations and {(first + n) * 3 + 11} samples.",
                  fill=0, font=font)
    return image


def big_png(path: Path, side: int) -> Path:
    """A ``side`` x ``side`` 8-bit greyscale PNG with text, written strip by strip through zlib."""
    import numpy as np

    def strips() -> Iterator[np.ndarray]:
        for top in range(0, side, STRIP_ROWS):
            rows = min(STRIP_ROWS, side - top)
            # Two lines of text in every third strip: ~20 lines over the image, large enough
            # (120 px) to stay readable when the image is read at a quarter of its size.
            count = 2 if (top // STRIP_ROWS) % 3 == 0 else 0
            text = np.asarray(text_image(side // 2, rows, lines=count, size=120, first=top // STRIP_ROWS))
            strip = np.full((rows, side), 255, np.uint8)  # the right half stays blank paper
            strip[:, : side // 2] = text
            yield strip

    write_grey_png(path, side, side, strips())
    return path


def write_grey_png(path: Path, width: int, height: int, strips: Iterator) -> None:
    """An 8-bit greyscale PNG from row strips (``(rows, width)`` uint8 arrays), compressed as they come."""
    import numpy as np

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(6)
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)))
        for strip in strips:
            rows = np.hstack([np.zeros((strip.shape[0], 1), np.uint8), strip])  # filter type 0 per row
            data = z.compress(rows.tobytes())
            if data:
                fh.write(chunk(b"IDAT", data))
        fh.write(chunk(b"IDAT", z.flush()) + chunk(b"IEND", b""))


def scanned_pdf(path: Path, pages: int) -> Path:
    """A PDF of ``pages`` image-only pages: the scan fixtures' 200-dpi pages in turn, each stamped with
    its number (so that, as in a real scan, no two pages share an image: MuPDF caches decoded ones)."""
    import io

    import pymupdf
    from PIL import Image, ImageDraw, ImageFont

    scans = []
    for name in ("report_scan.pdf", "visual_scan.pdf"):
        with pymupdf.open(FIXTURES / name) as src:
            for page in src:
                xref = page.get_images()[0][0]
                scans.append(Image.open(io.BytesIO(src.extract_image(xref)["image"])).convert("L"))
    font = ImageFont.load_default(size=28)
    doc = pymupdf.open()
    for n in range(pages):
        image = scans[n % len(scans)].copy()
        ImageDraw.Draw(image).text((image.width - 420, image.height - 60), f"SCAN-{n + 1:06d}", fill=0, font=font)
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=85)  # what scanners write; quick to encode
        page = doc.new_page(width=612, height=792)
        page.insert_image(page.rect, stream=buf.getvalue())
    doc.set_metadata({"title": f"bench memory {pages} {time.time()}"})
    doc.save(path, deflate=True)
    return path


# -- measuring -------------------------------------------------------------------------------


class IngestRss(TreeRss):
    """:class:`TreeRss` over the ingest command's process tree (not this process's), with its PSS too."""

    def __init__(self, pid: int, every_s: float = SAMPLE_S) -> None:
        import psutil

        self._root = psutil.Process(pid)
        self.pss_peak = 0
        self.main_hwm = self.worker_hwm = 0  # peak RSS (VmHWM) of the command, of its largest child
        self._samples = 0
        super().__init__(every_s)

    def _sample(self) -> int:
        import psutil

        try:
            procs = [self._root, *self._root.children(recursive=True)]
        except psutil.Error:  # the command has exited
            return 0
        self._samples += 1
        with_pss = self._samples % PSS_EVERY == 0
        rss = pss = 0
        for proc in procs:
            try:
                rss += proc.memory_info().rss
                pss += _pss(proc.pid) if with_pss else 0
                hwm = _proc_kb(proc.pid, "VmHWM") * 1024
            except (psutil.Error, OSError):  # exited between listing and reading
                continue
            if proc.pid == self._root.pid:
                self.main_hwm = max(self.main_hwm, hwm)
            else:
                self.worker_hwm = max(self.worker_hwm, hwm)
        self.pss_peak = max(self.pss_peak, pss)
        return rss


def _pss(pid: int) -> int:
    """Proportional set size of ``pid`` in bytes, from ``/proc/PID/smaps_rollup``."""
    return _proc_kb(pid, "Pss", "smaps_rollup") * 1024


def _proc_kb(pid: int, key: str, name: str = "status") -> int:
    """The ``key:`` line of ``/proc/PID/<name>``, in kB (0 if absent)."""
    for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def run_ingest(file: Path, index: Path) -> dict:
    """Run ``docrag ingest`` on ``file`` in a child process; its peaks, time and report."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen([sys.executable, "-m", "docrag", "ingest", str(file), "--index", str(index), "--json"],
                                cwd=ROOT, stdout=out, stderr=subprocess.PIPE, text=True)
        rss = IngestRss(proc.pid)
        proc.wait()
        seconds = time.perf_counter() - t0
        tree_mb = rss.stop()
        stderr = proc.stderr.read() if proc.stderr else ""
        out.seek(0)
        text = out.read()
    report = json.loads(text) if proc.returncode == 0 and text.strip() else {}
    totals = report.get("totals", {})
    files = report.get("files") or [{}]
    return {"rc": proc.returncode, "s": round(seconds, 1), "tree_mb": round(tree_mb, 1),
            "pss_mb": round(rss.pss_peak / 2**20, 1), "main_mb": round(rss.main_hwm / 2**20, 1),
            "worker_mb": round(rss.worker_hwm / 2**20, 1),
            "pages": totals.get("pages", 0), "chunks": totals.get("chunks", 0),
            "status": files[0].get("status", "?"),
            "error": files[0].get("error") or (stderr.strip()[-300:] if proc.returncode else ""),
            "warnings": files[0].get("warnings", [])}


def run_case(case: str, pages_big: int) -> dict:
    """Generate the case's input in a child process, then measure ``docrag ingest`` on it."""
    with tempfile.TemporaryDirectory(prefix="docrag-mem-") as tmp:
        made = subprocess.run([sys.executable, __file__, "--make", case, "--out", tmp, "--pages-big", str(pages_big)],
                              capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        path, description = made.split("\t", 1)
        row = {"case": case, "input": description, "mb_on_disk": round(Path(path).stat().st_size / 2**20, 1)}
        row.update(run_ingest(Path(path), Path(tmp) / "ix"))
    ok = row["rc"] == 0 and row["status"] in ("indexed", "replaced") and row["tree_mb"] <= LIMIT_MB
    row["verdict"] = "PASS" if ok else "FAIL"
    return row


def print_table(rows: list[dict]) -> None:
    """The figures, one line per case, then the acceptance checks."""
    print(f"    {'case':<13} {'input':<26} {'pages':>5} {'chunks':>6} {'s':>7} {'tree_mb':>8} {'pss_mb':>7} "
          f"{'main_mb':>8} {'worker_mb':>9}  verdict")
    for r in rows:
        print(f"    {r['case']:<13} {r['input']:<26} {r['pages']:>5} {r['chunks']:>6} {r['s']:>7.1f} "
              f"{r['tree_mb']:>8.1f} {r['pss_mb']:>7.1f} {r['main_mb']:>8.1f} {r['worker_mb']:>9.1f}  {r['verdict']}")
    for r in rows:
        if r["rc"] != 0 or r["status"] not in ("indexed", "replaced"):
            print(f"      {r['case']}: rc {r['rc']}, {r['status']}: {r['error']}")
        for w in r["warnings"][:3]:
            print(f"      {r['case']}: warning: {w[-160:]}")
    print(f"\n    acceptance (issue #17 line 5): peak tree RSS <= {LIMIT_MB:.0f} MB per case; "
          f"long scan <= {FLAT_RATIO}x the 50-page one")
    for r in rows:
        print(f"      {r['case']}: {r['tree_mb']:.0f} MB tree ({r['pss_mb']:.0f} MB PSS, {r['main_mb']:.0f} MB main) "
              f"{'ok' if r['verdict'] == 'PASS' else 'FAIL'}")
    by = {r["case"]: r for r in rows}
    if "scan-50" in by and "scan-big" in by:
        short, long = by["scan-50"], by["scan-big"]
        for key in ("tree_mb", "pss_mb", "main_mb", "worker_mb"):
            ratio = long[key] / max(short[key], 1e-9) if short[key] else float("nan")
            verdict = ("ok" if ratio <= FLAT_RATIO else "FAIL") if key == "tree_mb" else "(info)"
            print(f"      flat {key}: {long['pages']} / {short['pages']} pages = {ratio:.2f}x {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES), help="Cases to run.")
    parser.add_argument("--pages-big", type=int, default=500, help="Pages of the long scan (scan-big).")
    parser.add_argument("--json", action="store_true", help="Also print the rows as JSON.")
    parser.add_argument("--make", choices=CASES, help=argparse.SUPPRESS)  # internal: write one input
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make:
        path, description = make_input(args.make, Path(args.out), args.pages_big)
        print(f"{path}\t{description}")
        return
    print(machine())
    rows = []
    for case in args.cases:
        rows.append(run_case(case, args.pages_big))
        print(f"  {case}: {rows[-1]['tree_mb']:.0f} MB, {rows[-1]['s']:.0f} s", file=sys.stderr, flush=True)
    print_table(rows)
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
