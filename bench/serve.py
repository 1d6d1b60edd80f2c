"""Search latency of a live ``docrag serve`` under concurrent clients, idle and during an ingest.

Starts ``docrag serve`` (uvicorn, its own process, the default ``minilm``
embedder unless ``--embedder``) on 127.0.0.1 over a fresh temporary index,
uploads the seed fixtures through ``POST /documents`` and waits for them, then
runs three phases of client threads, each sending ``POST /search`` (the
questions of ``fixtures/data/qa.jsonl`` in turn, hybrid, k=5) back to back on
its own keep-alive connection:

- ``idle-1``: one client, nothing else happening, for ``--seconds`` (the baseline
  of the scaling line: ``rps x`` is the ``idle`` phase's requests/s over this one's);
- ``idle``: ``--clients`` clients, nothing else happening, for ``--seconds``;
- ``ingest``: the scanned fixtures (OCR) are uploaded at the start; the phase
  lasts ``--seconds`` or until the job ends, whichever is first, so every
  request timed is one made while the server ingests (``busy`` says which part
  of the phase the job was running). ``--no-ingest`` leaves it out.

``--index DIR`` serves a temporary copy of an existing index instead (no seed
upload; the index's own embedder), with filings-dev's questions unless
``--queries``: ``--index /tmp/filings-ix`` is the filings-dev index of
``bench/filings.py``.

An error is anything but a 200 with a JSON list (a timeout, a 5xx, a dropped
connection). Everything goes to 127.0.0.1; the server is stopped at the end.
Prints (``cpu_ms``: the server's CPU time per request; ``cores``: the cores it
used, CPU seconds over wall seconds, which on a loaded machine is what bounds the
scaling from one client to many; ``client``: the cores the bench's own clients used):

    phase  clients  requests  p50_ms  p95_ms  errors  rps  busy  cpu_ms  cores  client

On a machine whose cores the clients share, requests/s cannot scale from one client
to many by more than the server's cores under load over its cores for one client
(``cores`` of ``idle`` over ``idle-1``): the closing line prints that ceiling too.

Usage:
    python bench/serve.py                       # 8 clients, 20 s per phase
    python bench/serve.py --clients 4 --seconds 10 --json
    python bench/serve.py --index /tmp/filings-ix --no-ingest
    python bench/serve.py --index /tmp/filings-ix --no-ingest --search-processes 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine as _machine  # noqa: E402
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures" / "data"
FILINGS = ROOT.parent / "shared" / "data" / "filings-dev"
SEED = ["report.pdf", "mixed.pdf", "visual.pdf"]
INGEST = ["report_scan.pdf", "pages_scan.tiff"]
MAX_REQUESTS = 200_000  # per phase, a bound whatever the speed


def machine() -> str:
    return _machine()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``docrag serve`` in a child process on loopback; stopped (SIGINT, then kill) on exit."""

    def __init__(self, index_dir: Path, embedder: str, log: Path, search_threads: int = 0, processes: int = 1) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "DOCRAG_EMBEDDER": embedder, "PYTHONPATH": str(ROOT)}
        threads = (f", search_threads={search_threads}" if search_threads else "") + f", search_processes={processes}"
        code = ("import sys; from docrag.integrations.http import serve; "
                f"serve(sys.argv[1], host='127.0.0.1', port=int(sys.argv[2]), log_level='warning'{threads})")
        self._log = open(log, "wb")
        self.proc = subprocess.Popen([sys.executable, "-c", code, str(index_dir), str(self.port)], env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, client: Any, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docrag serve exited with {self.proc.returncode}; see {self._log.name}")
            try:
                if client.get(f"{self.base}/health", timeout=2).status_code == 200:
                    return
            except Exception:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"docrag serve not ready after {timeout:.0f} s")

    def cpu_s(self) -> float:
        """CPU seconds the server has used (user + system; its search processes too),
        from ``/proc``; nan elsewhere."""
        stats: dict[int, list[str]] = {}
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                stats[int(proc.name)] = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, ValueError, IndexError):
                continue  # gone meanwhile
        if self.proc.pid not in stats:
            return float("nan")
        tree, used = {self.proc.pid}, 0
        for pid in sorted(stats):  # children have higher pids than their parent (no wrap-around here)
            if pid in tree or int(stats[pid][1]) in tree:
                tree.add(pid)
                used += int(stats[pid][11]) + int(stats[pid][12])
        return used / os.sysconf("SC_CLK_TCK")

    def phase(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """:func:`run_phase` with the server's CPU time per request (``cpu_ms``) and its cores in use
        (``cores``: CPU seconds over wall seconds)."""
        before, mine = self.cpu_s(), time.process_time()
        out = run_phase(self.base, *args, **kwargs)
        used = self.cpu_s() - before
        out["cpu_ms"] = 1000 * used / out["requests"] if out["requests"] else float("nan")
        out["cores"] = used / out["seconds"]
        out["client_cores"] = (time.process_time() - mine) / out["seconds"]
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


def upload(client: Any, base: str, names: list[str]) -> str:
    files = [("file", (name, (FIXTURES / name).read_bytes(), "application/octet-stream")) for name in names]
    response = client.post(f"{base}/documents", files=files, timeout=60)
    response.raise_for_status()
    return str(response.json()["id"])


def wait_job(client: Any, base: str, job_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"{base}/jobs/{job_id}", timeout=10).json()
        if job["status"] in ("done", "failed") or time.monotonic() > deadline:
            return job  # type: ignore[no-any-return]
        time.sleep(0.25)


def run_phase(base: str, queries: list[str], clients: int, seconds: float,
              stop: threading.Event | None = None) -> dict[str, Any]:
    """``clients`` threads searching back to back for ``seconds`` (or until ``stop``).

    Each client is a keep-alive ``http.client`` connection: the clients share this machine's
    cores with the server, and the standard library's client costs a fraction of httpx's CPU per
    request (on 2 cores httpx took about a quarter of a core at 90 requests/s), so what is
    measured is the server.
    """
    import http.client
    from urllib.parse import urlsplit

    where = urlsplit(base)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[list[str]] = [[] for _ in range(clients)]
    start = threading.Barrier(clients + 1)
    end = threading.Event()
    budget = MAX_REQUESTS // clients

    def client_loop(i: int) -> None:
        conn = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
        headers = {"Content-Type": "application/json"}
        start.wait()
        n = i  # each thread starts at another question
        while not end.is_set() and len(latencies[i]) + len(errors[i]) < budget:
            body = json.dumps({"query": queries[n % len(queries)], "k": 5})
            n += 1
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/search", body, headers)
                r = conn.getresponse()
                data = r.read()
                ok = r.status == 200 and isinstance(json.loads(data), list)
                problem = "" if ok else f"{r.status} {data[:120]!r}"
            except Exception as exc:  # timeouts, resets: an error, not a crash of the bench
                problem = f"{type(exc).__name__}: {exc}"
                conn.close()  # a fresh connection for the next request
            dt = (time.perf_counter() - t0) * 1000
            if problem:
                errors[i].append(problem)
            else:
                latencies[i].append(dt)
        conn.close()

    threads = [threading.Thread(target=client_loop, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds and not (stop is not None and stop.is_set()):
        time.sleep(0.05)
    end.set()
    for t in threads:
        t.join(60)
    elapsed = time.monotonic() - t0
    lat = np.array([x for xs in latencies for x in xs]) if any(latencies) else np.zeros(0)
    errs = [e for es in errors for e in es]
    return {"clients": clients, "requests": int(lat.size + len(errs)), "seconds": round(elapsed, 2),
            "p50_ms": float(np.percentile(lat, 50)) if lat.size else float("nan"),
            "p95_ms": float(np.percentile(lat, 95)) if lat.size else float("nan"),
            "errors": len(errs), "rps": (lat.size + len(errs)) / elapsed, "error_samples": errs[:3]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=8, help="concurrent client threads")
    ap.add_argument("--seconds", type=float, default=20, help="length of each phase (the ingest phase ends sooner "
                                                              "when the job does)")
    ap.add_argument("--embedder", default="minilm", help="the server's text embedder (DOCRAG_EMBEDDER)")
    ap.add_argument("--ingest", nargs="+", default=INGEST, help="fixtures uploaded during the ingest phase")
    ap.add_argument("--no-ingest", action="store_true", help="leave the ingest phase out")
    ap.add_argument("--search-threads", type=int, default=0, help="the server's search threads (default: its cores)")
    ap.add_argument("--search-processes", type=int, default=1,
                    help="the server's search processes (docrag serve --search-processes)")
    ap.add_argument("--index", help="serve a temporary copy of this index instead of seeding one")
    ap.add_argument("--queries", nargs="+", help="JSONL files with a 'question' per line (default: the fixtures' "
                                                 "qa.jsonl, or filings-dev's qa.jsonl and qa-hard.jsonl with --index)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args()
    if not 1 <= args.clients <= 64 or not 0 < args.seconds <= 300:
        ap.error("--clients must be 1..64 and --seconds 0..300")
    import httpx

    files = args.queries or ([FILINGS / "qa.jsonl", FILINGS / "qa-hard.jsonl"] if args.index else [FIXTURES / "qa.jsonl"])
    queries = [json.loads(line)["question"] for f in files for line in Path(f).read_text().splitlines() if line.strip()]
    rows: list[dict[str, Any]] = []
    before = machine()
    job_state = "-"
    with tempfile.TemporaryDirectory(prefix="docrag-bench-serve-") as tmp, httpx.Client(timeout=30) as http:
        if args.index:
            shutil.copytree(args.index, Path(tmp) / "ix", ignore=shutil.ignore_patterns("*-wal", "*-shm"))
        server = Server(Path(tmp) / "ix", args.embedder, Path(tmp) / "server.log", args.search_threads,
                        args.search_processes)
        try:
            t0 = time.monotonic()
            server.wait_ready(http)
            if args.index:
                chunks = sum(d["chunks"] for d in http.get(f"{server.base}/documents").json())
            else:
                seed = wait_job(http, server.base, upload(http, server.base, SEED), timeout=600)
                if seed["status"] != "done":
                    raise RuntimeError(f"seed ingest {seed['status']}: {seed.get('error')}")
                chunks = sum(f.get("chunks") or 0 for f in seed["files"])
            setup_s = time.monotonic() - t0
            for _ in range(2):  # warm-up: model, FAISS, term index and SQLite caches of every reader
                run_phase(server.base, queries, args.clients, max(2.0, args.seconds / 10))

            rows.append({"phase": "idle-1", **server.phase(queries, 1, args.seconds), "busy": 0.0})
            rows.append({"phase": "idle", **server.phase(queries, args.clients, args.seconds),
                         "busy": 0.0})
            if args.no_ingest:
                return report(args, before, queries, chunks, setup_s, job_state, rows)

            job_id = upload(http, server.base, args.ingest)
            done = threading.Event()
            busy = {"s": 0.0, "job": {}}

            def watch() -> None:  # when the job ends, the phase ends: only requests made during the ingest count
                started = time.monotonic()
                with httpx.Client(base_url=server.base, timeout=30) as w:
                    while not done.is_set():
                        job = w.get(f"/jobs/{job_id}").json()
                        busy["job"], busy["s"] = job, time.monotonic() - started
                        if job["status"] in ("done", "failed"):
                            done.set()
                        else:
                            time.sleep(0.2)

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            phase = server.phase(queries, args.clients, args.seconds, stop=done)
            job_state = busy["job"].get("status", "?")
            done.set()
            watcher.join(30)
            rows.append({"phase": "ingest", **phase, "busy": min(1.0, busy["s"] / phase["seconds"])})
        finally:
            server.stop()
    return report(args, before, queries, chunks, setup_s, job_state, rows)


def report(args: argparse.Namespace, before: str, queries: list[str], chunks: int, setup_s: float, job_state: str,
           rows: list[dict[str, Any]]) -> int:
    """Print the table (or JSON); 1 when a request failed."""
    one = next(r for r in rows if r["phase"] == "idle-1")
    many = next(r for r in rows if r["phase"] == "idle")
    scaling = {"rps_x": many["rps"] / one["rps"] if one["rps"] else float("nan"),
               "p95_over_p50": many["p95_ms"] / many["p50_ms"] if many["p50_ms"] else float("nan"),
               "cores_x": many["cores"] / one["cores"] if one["cores"] else float("nan")}
    info = {"machine_before": before, "machine": machine(), "embedder": args.embedder, "index": args.index,
            "seed": None if args.index else SEED, "chunks": chunks, "setup_s": round(setup_s, 1),
            "ingest": None if args.no_ingest else args.ingest, "ingest_job_at_phase_end": job_state,
            "queries": len(queries), "rows": rows, "scaling": scaling}
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(before)
    what = args.index or ", ".join(SEED)
    processes = f"{args.search_processes} search process{'es' if args.search_processes > 1 else ''}"
    print(f"# docrag serve on 127.0.0.1, {processes}, embedder {args.embedder if not args.index else 'of the index'}, "
          f"index: {what} ({chunks} chunks, ready in {setup_s:.0f} s); POST /search hybrid k=5 over "
          f"{len(queries)} questions")
    if not args.no_ingest:
        print(f"# ingest phase: upload of {', '.join(args.ingest)} (OCR); job {job_state} at phase end")
    print(f"{'phase':<8} {'clients':>7} {'requests':>8} {'p50_ms':>8} {'p95_ms':>8} {'errors':>6} {'rps':>7} "
          f"{'busy':>5} {'cpu_ms':>7} {'cores':>5} {'client':>6}")
    for r in rows:
        print(f"{r['phase']:<8} {r['clients']:>7} {r['requests']:>8} {r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f} "
              f"{r['errors']:>6} {r['rps']:>7.1f} {r['busy']:>5.2f} {r['cpu_ms']:>7.1f} {r['cores']:>5.2f} "
              f"{r['client_cores']:>6.2f}")
    print(f"# idle, {many['clients']} clients against 1: rps x{scaling['rps_x']:.2f} (the server's cores "
          f"x{scaling['cores_x']:.2f}), p95/p50 {scaling['p95_over_p50']:.2f}")
    for r in rows:
        for sample in r["error_samples"]:
            print(f"# {r['phase']} error: {sample}")
    print(info["machine"])
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
