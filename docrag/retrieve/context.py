"""Context windows: a hit plus its neighbouring chunks on the same page."""

from __future__ import annotations

from docrag.index import LocalStore
from docrag.types import Hit, union

__all__ = ["expand_window"]


def expand_window(store: LocalStore, hits: list[Hit], n: int) -> None:
    """Extend each hit in place with up to ``n`` chunks before and after it on its page.

    Lines repeated by chunk overlap appear once; ``text``, ``line_boxes``,
    ``line_spans`` and ``chunk_bbox`` then describe the whole window, while
    ``bbox`` stays on the evidence.
    """
    for hit in hits:
        if hit.chunk_id is None:
            continue
        ids = store.neighbours(hit.chunk_id, n)
        parts = {h.chunk_id: h for h in store.hits([(i, 0.0) for i in ids])}
        text, boxes, spans, confs = "", [], [], []
        seen: set[tuple[float, ...]] = set()
        for cid in ids:
            part = parts.get(cid)
            if part is None:
                continue
            prev_end: int | None = None
            part_confs = part.line_confidences if len(part.line_confidences) == len(part.line_boxes) \
                else [1.0] * len(part.line_boxes)
            for box, (a, b), conf in zip(part.line_boxes, part.line_spans, part_confs):
                key = tuple(round(v, 1) for v in box)
                if key in seen:
                    prev_end = b
                    continue
                seen.add(key)
                if not text:
                    sep = ""
                elif prev_end is not None:
                    sep = part.text[prev_end:a]  # what the chunk itself put there: "", " " or a paragraph break
                else:
                    sep = "\n\n"
                text += sep
                spans.append((len(text), len(text) + (b - a)))
                text += part.text[a:b]
                boxes.append(box)
                confs.append(conf)
                prev_end = b
        if boxes:
            hit.text, hit.line_boxes, hit.line_spans, hit.line_confidences = text, boxes, spans, confs
            hit.chunk_bbox = union(boxes)
