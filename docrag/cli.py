"""The ``docrag`` command line.

Flags of ``ingest`` are generated from :class:`docrag.config.IngestOptions`,
so their help is the options' descriptions. Errors are one line on stderr and
a non-zero exit status; ``--json`` prints machine-readable output.
"""

from __future__ import annotations

import json
import sys
import textwrap
import typing
from pathlib import Path
from typing import Any, Callable

import click

from docrag.config import IngestOptions, options_from_env
from docrag.errors import DocragError

__all__ = ["main", "cli"]


def _options_from_model(model: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator adding one ``--flag`` per pydantic field, default ``None`` (= env, then model default)."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        for name, f in reversed(list(model.model_fields.items())):  # type: ignore[attr-defined]
            ann = f.annotation
            kind: Any
            flag = "--" + name.replace("_", "-")
            if ann is bool:
                fn = click.option(f"{flag}/--no-{name.replace('_', '-')}", name, default=None,
                                  help=f"{f.description} [default: {f.default}]")(fn)
                continue
            if typing.get_origin(ann) is typing.Literal:
                kind = click.Choice([str(a) for a in typing.get_args(ann)])
            else:
                kind = {int: int, float: float}.get(ann, str)
            fn = click.option(flag, name, type=kind, default=None,
                              help=f"{f.description} [default: {f.default}]")(fn)
        return fn

    return deco


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="docrag")
def cli() -> None:
    """docrag: PDFs and scans into a searchable index with page-and-box citations."""


@cli.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--index", "index_dir", required=True, type=click.Path(file_okay=False), help="Index directory.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Tag the documents (repeatable); filter on it in search.")
@click.option("--password", envvar="DOCRAG_PASSWORD", default=None, help="Password of encrypted PDFs (or DOCRAG_PASSWORD).")
@_options_from_model(IngestOptions)
def ingest(paths: tuple[str, ...], index_dir: str, as_json: bool, quiet: bool, tags: tuple[str, ...],
           password: str | None, **opts: Any) -> None:
    """Add PDFs and images (or folders of them) to an index."""
    from tqdm import tqdm

    from docrag.api import Index, IngestReport, expand_paths

    from docrag.index import parse_tags

    options = options_from_env(IngestOptions, **opts)
    tag_map = parse_tags(tags)
    index = Index(index_dir, options)
    files = expand_paths(paths)
    if not files:
        raise click.ClickException("no PDF or image files found in " + ", ".join(paths))
    counts = {path: _page_count(path, password) for path in files}
    bar = tqdm(total=sum(counts.values()), unit="page", disable=quiet or as_json, file=sys.stderr,
               smoothing=0.1, dynamic_ncols=True)
    seen = {"pages": 0}

    def progress(source: str, done: int, total: int) -> None:
        bar.update(1)
        seen["pages"] += 1

    report = IngestReport()
    try:
        for path in files:
            bar.set_description(textwrap.shorten(Path(path).name, 30, placeholder="…"))
            seen["pages"] = 0
            part = index.ingest([path], progress=progress, tags=tag_map, password=password)
            report.files += part.files
            report.seconds += part.seconds
            bar.update(max(0, counts[path] - seen["pages"]))  # skipped (unchanged) or failed files
    except KeyboardInterrupt:
        bar.close()
        index.close()
        done = sum(f.status in ("indexed", "replaced", "unchanged") for f in report.files)
        click.echo(f"interrupted: {done} of {len(files)} file(s) are in the index; the file being read was "
                   "not added, its pages read so far are kept. Run the same command again to go on.", err=True)
        sys.exit(130)
    bar.close()
    index.close()
    for f in report.files:
        if f.status == "failed":
            click.echo(f"error: {f.error}", err=True)
        for err in f.page_errors:
            click.echo(f"warning: page skipped: {err}", err=True)
        for warning in f.warnings:
            click.echo(f"warning: {warning}", err=True)
    totals = report.totals()
    if as_json:
        click.echo(json.dumps({"totals": totals, "files": [vars(f) for f in report.files]}, indent=2))
    else:
        click.echo(
            f"{totals['files']} file(s): {totals['indexed']} indexed, {totals['unchanged']} unchanged, "
            f"{totals['failed']} failed · {totals['pages']} pages ({totals['pages_ocr']} OCR'd) · "
            f"{totals['chunks']} chunks · {totals['seconds']:.1f} s"
            + (f" · {totals['resumed']} page(s) kept from an interrupted run" if totals["resumed"] else "")
        )
    if report.failures:
        sys.exit(1)


def _page_count(path: str, password: str | None) -> int:
    """Pages of a file for the progress bar (0 when it cannot be opened: ingest reports why)."""
    from docrag.errors import LoadError
    from docrag.io import open_document

    try:
        with open_document(path, password=password) as doc:
            return doc.page_count
    except LoadError:
        return 0


def _search_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Flags shared by ``search`` and ``eval``."""
    for opt in reversed([
        click.option("--mode", type=click.Choice(["hybrid", "dense", "bm25"]), default="hybrid", show_default=True,
                     help="hybrid: BM25 and dense fused by reciprocal rank fusion."),
        click.option("--kind", type=click.Choice(["any", "text", "table", "figure", "chart", "caption"]),
                     default="any", show_default=True, help="Only hits of this kind."),
        click.option("--source", default=None, help="Only documents whose path or file name matches this glob."),
        click.option("--pages", default=None, metavar="N[-M]", help="Only this page range (1-based, inclusive)."),
        click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Only documents with this tag (repeatable)."),
        click.option("--rerank", default=None, metavar="MODEL", help="Re-score the top hits with this cross-encoder (hub id or dir)."),
        click.option("--rrf-k", type=click.IntRange(1, 10000), default=60, show_default=True, help="RRF constant."),
        click.option("--cues/--no-cues", default=True, show_default=True,
                     help="Boost documents whose company or fiscal year the query names."),
    ]):
        fn = opt(fn)
    return fn


def _search_kwargs(mode: str, kind: str, source: str | None, pages: str | None, tags: tuple[str, ...],
                   rerank: str | None, rrf_k: int, cues: bool = True) -> dict[str, Any]:
    from docrag.index import parse_pages, parse_tags

    return {"mode": mode, "kind": kind, "source": source, "pages": parse_pages(pages), "tags": parse_tags(tags),
            "rerank": rerank, "rrf_k": rrf_k, "cues": cues}


@cli.command()
@click.argument("query")
@click.option("--index", "index_dir", required=True, type=click.Path(file_okay=False), help="Index directory.")
@click.option("-k", "k", type=click.IntRange(1, 1000), default=5, show_default=True, help="Number of hits.")
@_search_options
@click.option("--window", type=click.IntRange(0, 20), default=0, show_default=True,
              help="Add N neighbouring chunks of the same page to each hit.")
@click.option("--group", type=click.Choice(["chunk", "page"]), default="chunk", show_default=True,
              help="page: one hit per page (its best chunk).")
@click.option("--highlight", "highlight_dir", type=click.Path(file_okay=False), default=None,
              help="Write each hit's page as PNG into this folder with its box drawn.")
@click.option("--json", "as_json", is_flag=True, help="Print hits as a JSON list.")
def search(query: str, index_dir: str, k: int, window: int, group: str, highlight_dir: str | None, as_json: bool,
           **kw: Any) -> None:
    """Search an index; every hit names its file, page and box (PDF points)."""
    from pathlib import Path

    from docrag.api import Index

    hits = Index(index_dir).search(query, k=k, window=window, group=group, **_search_kwargs(**kw))
    if highlight_dir:
        from docrag.integrations.highlight import render_hit

        for rank, h in enumerate(hits, 1):
            out = render_hit(h, Path(highlight_dir) / f"{rank:02d}-{Path(h.source).stem}-p{h.page}.png")
            if not as_json:
                click.echo(f"highlight: {out}", err=True)
    if as_json:
        keys = ("source", "doc_id", "page", "bbox", "chunk_bbox", "kind", "text", "score", "image", "context")
        click.echo(json.dumps([{key: getattr(h, key) for key in keys} for h in hits], indent=2))
        return
    if not hits:
        click.echo("no hits")
    for rank, h in enumerate(hits, 1):
        box = ", ".join(f"{v:.0f}" for v in h.bbox)
        click.echo(f"{rank:>2}. {h.score:.3f}  {h.source}  p.{h.page}  [{box}]  {h.kind}")
        click.echo(textwrap.indent(textwrap.shorten(h.text.replace("\n", " "), 300, placeholder=" …"), "    "))


@cli.command("eval")
@click.option("--qa", "qa_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="JSONL: one {question, source or doc, page} per line (see README).")
@click.option("--index", "index_dir", required=True, type=click.Path(file_okay=False), help="Index directory.")
@click.option("--modes", default="dense,bm25,hybrid", show_default=True, help="Comma-separated modes to compare.")
@_search_options
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def eval_command(qa_file: str, index_dir: str, modes: str, as_json: bool, **kw: Any) -> None:
    """Page-level recall@1/5/10, MRR@10 and nDCG@10 of each search mode on a QA set."""
    from docrag.api import Index
    from docrag.evaluate import evaluate, load_qa

    kwargs = _search_kwargs(**kw)
    kwargs.pop("mode")
    results = evaluate(Index(index_dir), load_qa(qa_file), modes=[m.strip() for m in modes.split(",") if m.strip()],
                       **kwargs)
    if as_json:
        click.echo(json.dumps(results, indent=2))
        return
    cols = ["recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "doc_recall@1"]
    click.echo(f"{results['questions']} questions · {qa_file}")
    click.echo(f"{'mode':>8}  " + "  ".join(f"{c:>12}" for c in cols))
    for mode, row in results["modes"].items():
        click.echo(f"{mode:>8}  " + "  ".join(f"{row[c]:>12.3f}" for c in cols))


@cli.command()
@click.argument("index_dir", type=click.Path(file_okay=False))
@click.option("--docs", is_flag=True, help="List the documents too.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def info(index_dir: str, docs: bool, as_json: bool) -> None:
    """Show what an index holds."""
    from docrag.api import Index

    index = Index(index_dir)
    stats = index.info()
    problems = index.store().check()
    stats["integrity"] = "; ".join(problems) or "ok"
    documents = index.documents() if docs or as_json else []
    if as_json:
        click.echo(json.dumps({**stats, "documents_list": documents}, indent=2))
    else:
        for key, value in stats.items():
            if key == "interrupted":
                value = (f"{value['documents']} document(s), {value['pages']} OCR'd page(s) kept; ingest them "
                         "again to go on") if value["documents"] else "none"
            click.echo(f"{key:>12}: {value}")
        for d in documents:
            click.echo(f"  {d['doc_id'][:12]}  {d['pages']:>4} p  {d['chunks']:>5} chunks  {d['source']}")
            profile = {**d["info"].get("profile", {}), **d.get("tags", {})}
            if profile:
                click.echo("      " + " · ".join(f"{k}={v}" for k, v in profile.items()))
    if problems:
        raise click.ClickException(f"{index_dir}: the index is damaged ({stats['integrity']}); "
                                   "delete it and ingest again")


@cli.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--index", "index_dir", required=True, type=click.Path(file_okay=False), help="Index directory.")
def delete(sources: tuple[str, ...], index_dir: str) -> None:
    """Remove documents (by path as ingested, absolute path, or doc id)."""
    from docrag.api import Index

    index = Index(index_dir)
    missing = []
    for source in sources:
        n = index.delete(source)
        if n:
            click.echo(f"deleted {source}")
        else:
            missing.append(source)
    if missing:
        raise click.ClickException("not in the index: " + ", ".join(missing))


@cli.command()
@click.option("--index", "index_dir", required=True, type=click.Path(file_okay=False),
              help="Index directory (created by the first upload when missing).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; any address but loopback needs --token.")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True, help="Port to listen on.")
@click.option("--token", envvar="DOCRAG_TOKEN", default=None,
              help="Bearer token every request but /health must carry (or set DOCRAG_TOKEN).")
@click.option("--max-upload-mb", type=click.FloatRange(min=0, min_open=True), default=200, show_default=True,
              help="Limit on the files of one upload together, in MB (413 past it).")
@click.option("--rerank-model", "rerankers", multiple=True, metavar="MODEL",
              help="A cross-encoder (hub id or dir) clients may name in 'rerank' (repeatable; none by default).")
@click.option("--cors-origin", "cors_origins", multiple=True, metavar="URL",
              help="Allow browser requests from this origin (repeatable); CORS is off without it.")
@_options_from_model(IngestOptions)
def serve(index_dir: str, host: str, port: int, token: str | None, max_upload_mb: float, rerankers: tuple[str, ...],
          cors_origins: tuple[str, ...], **opts: Any) -> None:
    """Serve an index over HTTP: search, uploads, deletes, OpenAI-style embeddings (docs at /docs)."""
    try:
        from docrag.integrations.http import serve as run_server

        run_server(index_dir, host=host, port=port, token=token, max_upload_mb=max_upload_mb,
                   options=options_from_env(IngestOptions, **opts), rerankers=rerankers, cors_origins=cors_origins)
    except ImportError as exc:
        raise click.ClickException(str(exc)) from None


@cli.command("ocr")
@click.argument("file", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print pages -> lines -> words (text, confidence, bbox in PDF points).")
@click.option("--text", "as_text", is_flag=True, help="Print the text in reading order (the default output).")
@click.option("--pdf", "pdf_out", type=click.Path(dir_okay=False), default=None,
              help="Write a searchable PDF: the same pages plus an invisible text layer on the printed words.")
@click.option("--render", "render_dir", type=click.Path(file_okay=False), default=None,
              help="Write each page as PNG with the lines (blue) and figures/tables (green) that were found.")
@_options_from_model(IngestOptions)
def ocr_command(file: str, as_json: bool, as_text: bool, pdf_out: str | None, render_dir: str | None,
                **opts: Any) -> None:
    """OCR a PDF or image without indexing it (every page unless --ocr auto)."""
    from docrag.api import ocr as run_ocr

    if opts.get("ocr") is None:
        opts["ocr"] = "always"
    options = options_from_env(IngestOptions, **opts)
    pages = []
    for page in run_ocr(file, options):
        if page.error:
            click.echo(f"warning: page skipped: {page.error}", err=True)
        for warning in page.warnings:
            click.echo(f"warning: {file} (page {page.number}): {warning}", err=True)
        pages.append(page)
        if render_dir:
            from pathlib import Path

            from docrag.integrations.highlight import render_boxes

            boxes = [(ln.bbox, (40, 90, 230), 1) for ln in page.lines]
            boxes += [(r.bbox, (20, 160, 60), 2) for r in page.regions]
            out = render_boxes(file, page.number, boxes, Path(render_dir) / f"{Path(file).stem}-p{page.number}.png")
            click.echo(f"rendered {out}", err=True)
        if not as_json and not pdf_out and not render_dir or as_text:
            click.echo(page.text)
            click.echo("\f")
    if as_json:
        click.echo(json.dumps({"source": file, "pages": [_page_json(p) for p in pages]}, indent=1))
    if pdf_out:
        from docrag.integrations.searchable_pdf import write_searchable_pdf

        out = write_searchable_pdf(file, pages, pdf_out)
        click.echo(f"wrote {out}", err=True)


def _page_json(page: Any) -> dict[str, Any]:
    return {
        "page": page.number, "width": page.width, "height": page.height, "method": page.method,
        "reason": page.reason, "orientation": getattr(page, "orientation", 0), "skew": getattr(page, "skew", 0.0),
        "error": page.error,
        "lines": [
            {"text": ln.text, "confidence": round(ln.confidence, 4), "bbox": [round(v, 2) for v in ln.bbox],
             "words": [{"text": w.text, "confidence": round(w.confidence, 4), "bbox": [round(v, 2) for v in w.bbox]}
                       for w in ln.words]}
            for ln in page.lines
        ],
    }


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning docrag errors into one line and exit 2."""
    try:
        cli.main(args=argv, prog_name="docrag", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except DocragError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except ImportError as exc:
        if "pip install" not in str(exc):  # ours say what to install; any other is a bug: show it
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except SystemExit:
        raise


if __name__ == "__main__":
    main()
