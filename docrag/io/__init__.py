"""Input: open PDFs and images, stream pages, text layers and rasters."""

from __future__ import annotations

from docrag.io.document import Document, PageSource, Raster, file_sha256, open_document
from docrag.io.sniff import sniff
from docrag.io.textlayer import TextLayerVerdict, assess_text_layer

__all__ = [
    "Document",
    "PageSource",
    "Raster",
    "file_sha256",
    "open_document",
    "sniff",
    "TextLayerVerdict",
    "assess_text_layer",
]
