"""The ``docrag`` command line.

Flags of ``ingest`` are generated from :class:`docrag.config.IngestOptions`,
so their help is the options' descriptions. Errors are one line on stderr and
a non-zero exit status; ``--json`` prints machine-readable output.
"""

from __future__ import annotations

import json
import sys
import textwrap
import types
import typing
from pathlib import Path
from typing import Any, Callable

import click
from pydantic import BaseModel

from docrag.config import (ENV_VARS, IngestOptions, ReadingOptions, SearchOptions, ServingOptions, environment,
                           options_from_env)
from docrag.errors import ConfigError, DocragError

__all__ = ["main", "cli"]


# Flags whose name is not the field's: a shorter or singular spelling, and old ones kept as aliases.
_FLAG_NAMES = {"k": ["-k", "--k"], "tags": ["--tag"], "rerank": ["--rerank"], "cors_origin": ["--cors-origin"]}


def _options_from_model(model: type[BaseModel], exclude: tuple[str, ...] = (),
                        aliases: dict[str, list[str]] | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator adding one flag per pydantic field, default ``None`` (= environment, then the model's default).

    The help of each flag is the field's description; choices come from ``Literal`` types;
    dicts take repeatable ``KEY=VALUE``, tuples repeat the flag, a page range is ``N-M``.
    """

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        for name, f in reversed(list(model.model_fields.items())):
            if name in exclude:
                continue
            ann, default = _unoptional(f.annotation), f.get_default(call_default_factory=True)
            shown = "none" if default in (None, (), {}) else default
            flags = _FLAG_NAMES.get(name, ["--" + name.replace("_", "-")]) + (aliases or {}).get(name, [])
            extra: dict[str, Any] = {"help": f"{f.description} [default: {shown}]", "default": None}
            if ann is bool:
                fn = click.option(f"{flags[0]}/--no-{flags[0][2:]}", name, **extra)(fn)
                continue
            origin = typing.get_origin(ann)
            if origin is typing.Literal:
                extra["type"] = click.Choice([str(a) for a in typing.get_args(ann)] + (["any"] if name == "kind" else []))
            elif origin is dict:
                extra.update(multiple=True, metavar="KEY=VALUE", default=())
            elif origin is tuple and typing.get_args(ann)[-1] is Ellipsis:
                extra.update(multiple=True, default=())
            elif origin is tuple:
                extra["metavar"] = "N[-M]"
            else:
                extra["type"] = {int: int, float: float}.get(ann, str)
            fn = click.option(*flags, name, **extra)(fn)
        return fn

    return deco


def _unoptional(ann: Any) -> Any:
    """``Optional[X]`` -> ``X``."""
    args = [a for a in typing.get_args(ann) if a is not type(None)]
    return args[0] if typing.get_origin(ann) in (typing.Union, types.UnionType) and len(args) == 1 else ann


def _given(values: dict[str, Any]) -> dict[str, Any]:
    """The flags the user gave (unset ones are None or empty and fall back to the environment)."""
    return {k: v for k, v in values.items() if v not in (None, ())}


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
@click.option("--password", default=None, help="Password of encrypted PDFs (or DOCRAG_PASSWORD).")
@_options_from_model(IngestOptions)
def ingest(paths: tuple[str, ...], index_dir: str, as_json: bool, quiet: bool, tags: tuple[str, ...],
           password: str | None, **opts: Any) -> None:
    """Add PDFs and images (or folders of them) to an index."""
    from tqdm import tqdm

    from docrag.api import Index, IngestReport, expand_paths
    from docrag.config import parse_tags

    options = options_from_env(IngestOptions, **opts)
    password = password or environment().password
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

    def stages(source: str, stage: str, done: int, total: int) -> None:
        # A long document's embedding takes a while after its last page: say how far it got.
        if done < total:
            bar.set_postfix_str(f"{stage} {done}/{total} chunks", refresh=True)

    report = IngestReport()
    try:
        for path in files:
            bar.set_description(textwrap.shorten(Path(path).name, 30, placeholder="…"))
            seen["pages"] = 0
            part = index.ingest([path], progress=progress, tags=tag_map, password=password, stages=stages)
            report.files += part.files
            report.seconds += part.seconds
            bar.update(max(0, counts[path] - seen["pages"]))  # skipped (unchanged) or failed files
            bar.set_postfix_str(report.rates(), refresh=True)
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
    totals, rates = report.totals(), report.rates()
    if as_json:
        click.echo(json.dumps({"totals": totals, "files": [vars(f) for f in report.files]}, indent=2))
    else:
        click.echo(
            f"{totals['files']} file(s): {totals['indexed']} indexed, {totals['unchanged']} unchanged, "
            f"{totals['failed']} failed · {totals['pages']} pages ({totals['pages_ocr']} OCR'd) · "
            f"{totals['chunks']} chunks · {totals['seconds']:.1f} s"
            + (f" · {totals['resumed']} page(s) kept from an interrupted run" if totals["resumed"] else "")
            + (f" ({rates})" if rates else "")
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


SCORE_NOTE = {"hybrid": "BM25 and dense fused by rank and relative score (a first place in one ranking adds 1; only the order means anything)",
              "dense": "cosine similarity of the query and chunk vectors", "bm25": "BM25 relevance (negated FTS5 rank)"}


@cli.command()
@click.argument("query")
@click.option("--index", "index_dir", required=True, type=click.Path(file_okay=False), help="Index directory.")
@_options_from_model(SearchOptions)
@click.option("--highlight", "highlight_dir", type=click.Path(file_okay=False), default=None,
              help="Write each hit's page as PNG into this folder with its box drawn.")
@click.option("--json", "as_json", is_flag=True, help="Print hits as a JSON list.")
def search(query: str, index_dir: str, highlight_dir: str | None, as_json: bool, **kw: Any) -> None:
    """Search an index; every hit names its file, page and box (PDF points)."""
    from docrag.api import Index

    options = options_from_env(SearchOptions, **_given(kw))
    with Index(index_dir) as index:
        hits = index.search(query, options)
    if highlight_dir:
        from docrag.integrations.highlight import render_hit

        for rank, h in enumerate(hits, 1):
            out = render_hit(h, Path(highlight_dir) / f"{rank:02d}-{Path(h.source).stem}-p{h.page}.png")
            if not as_json:
                click.echo(f"highlight: {out}", err=True)
    if as_json:
        click.echo(json.dumps([h.to_json() for h in hits], indent=2))
        return
    if not hits:
        click.echo("no hits")
        return
    note = "the cross-encoder's relevance" if options.rerank else SCORE_NOTE[options.mode]
    click.echo(f"score: {note}", err=True)
    for rank, h in enumerate(hits, 1):
        box = ", ".join(f"{v:.0f}" for v in h.bbox)
        read = f"  {h.read_by} {h.confidence:.2f}" if h.read_by and h.confidence is not None else ""
        click.echo(f"{rank:>2}. {h.score:.3f}  {h.source}  p.{h.page}  [{box}]  {h.kind}{read}")
        click.echo(textwrap.indent(textwrap.shorten(h.text.replace("\n", " "), 300, placeholder=" …"), "    "))


EXPLAIN_AT = 5
"""``docrag eval --explain`` lists the questions whose gold page is not in the top 5."""


@cli.command("eval")
@click.option("--qa", "qa_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="JSONL: one {question, source or doc, page[, also_in][, type]} per line (see README).")
@click.option("--index", "index_dir", required=True, type=click.Path(file_okay=False), help="Index directory.")
@click.option("--modes", "--mode", "modes", default="dense,bm25,hybrid", show_default=True,
              help="Search modes to compare, comma-separated (--mode X: just that one).")
@_options_from_model(SearchOptions, exclude=("k", "mode", "group", "locate", "window"))
@click.option("--explain", is_flag=True,
              help=f"List each miss at {EXPLAIN_AT}: the gold page's rank and the top page's statement or section.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def eval_command(qa_file: str, index_dir: str, modes: str, explain: bool, as_json: bool, **kw: Any) -> None:
    """Page-level recall@1/5/10, MRR@10 and nDCG@10 of each search mode on a QA set, per question type
    when the rows have a ``type``."""
    from docrag.api import Index
    from docrag.config import MODES
    from docrag.evaluate import evaluate, load_qa

    wanted = [m.strip() for m in modes.split(",") if m.strip()]
    unknown = [m for m in wanted if m not in MODES]
    if unknown or not wanted:
        raise click.BadParameter(f"unknown mode(s) {', '.join(unknown) or '(none)'}; known: {', '.join(MODES)}",
                                 param_hint="--modes")
    options = options_from_env(SearchOptions, **_given(kw))
    kwargs = options.model_dump(exclude={"k", "mode", "group", "locate", "window"})
    with Index(index_dir) as index:
        results = evaluate(index, load_qa(qa_file), modes=wanted, explain=EXPLAIN_AT if explain else 0, **kwargs)
    if as_json:
        click.echo(json.dumps(results, indent=2))
        return
    cols = ["recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "doc_recall@1"]
    click.echo(f"{results['questions']} questions · {qa_file}")
    click.echo(f"{'mode':>8}  " + "  ".join(f"{c:>12}" for c in cols))
    for mode, row in results["modes"].items():
        click.echo(f"{mode:>8}  " + "  ".join(f"{row[c]:>12.3f}" for c in cols))
    _echo_per_type(results.get("per_type", {}), cols[:4])
    for mode, misses in results.get("misses", {}).items():
        _echo_misses(mode, misses, results["questions"])


def _echo_per_type(per_type: dict[str, dict[str, dict[str, float]]], cols: list[str]) -> None:
    """The per-type table of ``docrag eval``: one line per mode and question type."""
    if not per_type:
        return
    width = max(len(t) for by_type in per_type.values() for t in by_type)
    click.echo("\nper question type")
    click.echo(f"{'mode':>8}  {'type':<{width}}  {'n':>4}  " + "  ".join(f"{c:>10}" for c in cols))
    for mode, by_type in per_type.items():
        for t, row in by_type.items():
            figures = "  ".join(f"{row[c]:>10.3f}" for c in cols)
            click.echo(f"{mode:>8}  {t:<{width}}  {row['questions']:>4}  {figures}")


def _echo_misses(mode: str, misses: list[dict[str, Any]], questions: int) -> None:
    """``docrag eval --explain``: each miss with the gold page's rank and what ranked first instead."""
    click.echo(f"\nmisses at {EXPLAIN_AT}, {mode}: {len(misses)} of {questions}")
    for m in misses:
        rank = f"rank {m['gold_rank']}" if m["gold_rank"] else "not in the top 10"
        kind = f"[{m['type']}] " if m["type"] else ""
        click.echo(f"  {kind}{m['question']}")
        context = textwrap.shorten((m["top_context"] or "").replace("\n", " "), 160, placeholder=" …") or "-"
        click.echo(f"    gold {m['gold']} ({rank}); top {m['top'] or '-'}: {context}")


@cli.command()
@click.option("--index", "index_dir", type=click.Path(file_okay=False), default=None, help="Index directory.")
@click.argument("old_index_dir", required=False, type=click.Path(file_okay=False), metavar="")
@click.option("--docs", is_flag=True, help="List the documents too.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def info(index_dir: str | None, old_index_dir: str | None, docs: bool, as_json: bool) -> None:
    """Show what an index holds, and check it (exit 1 when it is damaged)."""
    from docrag.api import Index

    if old_index_dir and not index_dir:  # the spelling before 0.2: kept for one release
        click.echo("note: `docrag info DIR` is deprecated; use `docrag info --index DIR`", err=True)
    index_dir = index_dir or old_index_dir
    if not index_dir:
        raise click.UsageError("Missing option '--index'.")
    with Index(index_dir) as index:
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

    missing = []
    with Index(index_dir) as index:
        for source in sources:
            if index.delete(source):
                click.echo(f"deleted {source}")
            else:
                missing.append(source)
    if missing:
        raise click.ClickException("not in the index: " + ", ".join(missing))


@cli.command()
@click.option("--index", "index_dir", required=True, type=click.Path(file_okay=False),
              help="Index directory (created by the first upload when missing).")
@_options_from_model(ServingOptions, aliases={"rerank": ["--rerank-model"]})
@_options_from_model(IngestOptions)
def serve(index_dir: str, **opts: Any) -> None:
    """Serve an index over HTTP: search, uploads, deletes, OpenAI-style embeddings (docs at /docs)."""
    serving = options_from_env(ServingOptions, **_given({k: opts.pop(k) for k in ServingOptions.model_fields}))
    from docrag.integrations.http import serve as run_server

    run_server(index_dir, host=serving.host, port=serving.port, token=serving.token,
               max_upload_mb=serving.max_upload_mb, options=options_from_env(IngestOptions, **_given(opts)),
               rerankers=serving.rerank, cors_origins=serving.cors_origin,
               search_processes=serving.search_processes)


@cli.command("ocr")
@click.argument("file", type=click.Path())
@click.option("--json", "as_json", is_flag=True,
              help="Print pages -> lines -> words (text, confidence, bbox in PDF points) and regions as JSON.")
@click.option("--text", "as_text", is_flag=True,
              help="Print the text in reading order (the default output); with --json, each page's 'text'.")
@click.option("--pdf", "pdf_out", type=click.Path(dir_okay=False), default=None,
              help="Write a searchable PDF: the same pages plus an invisible text layer on the printed words.")
@click.option("--render", "render_dir", type=click.Path(file_okay=False), default=None,
              help="Write each page as PNG with the lines (blue) and figures/tables (green) that were found.")
@click.option("--password", default=None, help="Password of an encrypted PDF (or DOCRAG_PASSWORD).")
@_options_from_model(ReadingOptions)
def ocr_command(file: str, as_json: bool, as_text: bool, pdf_out: str | None, render_dir: str | None,
                password: str | None, **opts: Any) -> None:
    """OCR a PDF or image without indexing it (every page unless --ocr auto)."""
    from docrag.api import ocr as run_ocr

    options = options_from_env(ReadingOptions, **{"ocr": "always", **_given(opts)})
    pages = []
    for page in run_ocr(file, options, password=password or environment().password):
        if page.error:
            click.echo(f"warning: page skipped: {page.error}", err=True)
        for warning in page.warnings:
            click.echo(f"warning: {file} (page {page.number}): {warning}", err=True)
        pages.append(page)
        if render_dir:
            from docrag.integrations.highlight import render_boxes

            boxes = [(ln.bbox, (40, 90, 230), 1) for ln in page.lines]
            boxes += [(r.bbox, (20, 160, 60), 2) for r in page.regions]
            out = render_boxes(file, page.number, boxes, Path(render_dir) / f"{Path(file).stem}-p{page.number}.png")
            click.echo(f"rendered {out}", err=True)
        if not as_json and (as_text or not (pdf_out or render_dir)):
            click.echo(page.text)
            click.echo("\f")
    if as_json:
        click.echo(json.dumps({"source": file, "pages": [_page_json(p, with_text=as_text) for p in pages]}, indent=1))
    if pdf_out:
        from docrag.integrations.searchable_pdf import write_searchable_pdf

        out = write_searchable_pdf(file, pages, pdf_out)
        click.echo(f"wrote {out}", err=True)


def _page_json(page: Any, with_text: bool = False) -> dict[str, Any]:
    out = {
        "page": page.number, "width": page.width, "height": page.height, "method": page.method,
        "reason": page.reason, "orientation": page.orientation, "skew": page.skew, "error": page.error,
        "lines": [
            {"text": ln.text, "confidence": round(ln.confidence, 4), "bbox": [round(v, 2) for v in ln.bbox],
             "words": [{"text": w.text, "confidence": round(w.confidence, 4), "bbox": [round(v, 2) for v in w.bbox]}
                       for w in ln.words]}
            for ln in page.lines
        ],
        "regions": [
            {"kind": r.kind, "subtype": r.subtype, "bbox": [round(v, 2) for v in r.bbox], "caption": r.caption,
             "confidence": round(r.score, 4), "detector": r.source}
            for r in page.regions
        ],
    }
    if with_text:
        out["text"] = page.text
    return out


def _environment_help() -> str:
    return "Environment variables:\n\n" + "\n\n".join(f"  {name}: {text}" for name, text in ENV_VARS.items())


cli.epilog = _environment_help()


def main(argv: list[str] | None = None) -> None:
    """Entry point: exit 0 on success, 1 when an operation fails, 2 for a usage error."""
    try:
        cli.main(args=argv, prog_name="docrag", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:  # UsageError and BadParameter exit 2, a failed operation 1
        exc.show()
        sys.exit(exc.exit_code)
    except ConfigError as exc:  # a bad option value or an unknown engine name: a usage error
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except DocragError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except ImportError as exc:
        if "pip install" not in str(exc):  # ours say what to install; any other is a bug: show it
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
