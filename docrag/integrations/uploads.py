"""Uploads for ``docrag serve``: multipart bodies streamed into ``<index>/uploads/``.

File parts are written to disk as they arrive, their size counted against the
server's limit, and checked by content (PDF, PNG, JPEG, TIFF) before anything is
queued; the client's file name is kept only as a label.

>>> sanitize_filename("../../etc/passwd"), sanitize_filename("C:\\\\x\\\\a b.pdf"), sanitize_filename("..")
('passwd', 'a b.pdf', 'upload')
"""

from __future__ import annotations

import re
import unicodedata
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, AsyncIterator, Callable, Mapping

from docrag.errors import LoadError
from docrag.io.sniff import sniff

__all__ = ["Upload", "UploadError", "sanitize_filename", "receive_uploads", "FILE_FIELDS"]


def sanitize_filename(name: str | None, default: str = "upload") -> str:
    """A client's file name reduced to a harmless label: last path part, printable, <= 200 chars.

    The label is only ever shown (as the document's ``source``); it never becomes a path.
    """
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip().lstrip(".").strip()
    return name[:200] or default


@dataclass
class Upload:
    """A file received from a client: where the server stored it, and the name the client gave."""

    path: Path
    label: str


FILE_FIELDS = ("file", "files")
_EXTENSIONS = {"pdf": "pdf", "png": "png", "jpeg": "jpg", "tiff": "tif"}
_MAX_FIELD_BYTES = 64 * 1024  # all text fields of one request together


class UploadError(Exception):
    """An upload refused, with the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    name: str = ""
    label: str | None = None
    path: Path | None = None
    fh: IO[bytes] | None = None
    data: bytearray = field(default_factory=bytearray)


class _Collector:
    """python-multipart callbacks: file parts go to ``.incoming-*`` files, text parts to memory."""

    def __init__(self, folder: Path, max_bytes: int, max_files: int) -> None:
        self.folder, self.max_bytes, self.max_files = folder, max_bytes, max_files
        self.files: list[_Part] = []
        self.fields: dict[str, list[str]] = {}
        self.file_bytes = self.field_bytes = 0
        self._part = _Part()
        self._header = [b"", b""]
        self._writes: list[tuple[IO[bytes], bytes]] = []

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {"on_part_begin": self._begin, "on_part_data": self._data, "on_part_end": self._end,
                "on_header_field": lambda d, a, b: self._add_header(0, d[a:b]),
                "on_header_value": lambda d, a, b: self._add_header(1, d[a:b]),
                "on_header_end": self._header_end, "on_headers_finished": self._headers_done}

    def _begin(self) -> None:
        self._part = _Part()

    def _add_header(self, i: int, data: bytes) -> None:
        self._header[i] += data

    def _header_end(self) -> None:
        self._part.headers[self._header[0].strip().lower()] = self._header[1].strip()
        self._header = [b"", b""]

    def _headers_done(self) -> None:
        from python_multipart.multipart import parse_options_header

        raw = self._part.headers.get(b"content-disposition", b"")
        _, options = parse_options_header(raw)
        part = self._part
        part.name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        star = re.search(rb"filename\*=UTF-8''([^;]+)", raw, re.IGNORECASE)
        if star:  # RFC 5987 form, which the parser leaves out
            filename = urllib.parse.unquote_to_bytes(star.group(1).strip(b'"'))
        if filename is None and part.name not in FILE_FIELDS:
            return  # a text field
        if len(self.files) >= self.max_files:
            raise UploadError(400, f"too many files in one upload (at most {self.max_files})")
        part.label = sanitize_filename(filename.decode("utf-8", "replace") if filename else None)
        # The server picks every name on disk; the client's name is only a label.
        part.path = self.folder / f".incoming-{uuid.uuid4().hex}"
        part.fh = open(part.path, "xb")
        self.files.append(part)

    def _data(self, data: bytes, start: int, end: int) -> None:
        chunk = bytes(data[start:end])
        part = self._part
        if part.fh is not None:
            self.file_bytes += len(chunk)
            if self.file_bytes > self.max_bytes:
                raise UploadError(413, f"upload over the limit of {self.max_bytes / 1e6:.0f} MB; "
                                       "send fewer or smaller files, or raise the server's --max-upload-mb")
            self._writes.append((part.fh, chunk))
        else:
            self.field_bytes += len(chunk)
            if self.field_bytes > _MAX_FIELD_BYTES:
                raise UploadError(413, f"form fields over {_MAX_FIELD_BYTES // 1024} KiB")
            part.data += chunk

    def _end(self) -> None:
        part = self._part
        if part.fh is None:
            self.fields.setdefault(part.name, []).append(part.data.decode("utf-8", "replace"))

    def flush(self) -> None:
        for fh, chunk in self._writes:
            fh.write(chunk)
        self._writes.clear()

    def store(self) -> list[Upload]:
        """Close the received files, check what they are and give them their final names."""
        self.flush()
        uploads = []
        for part in self.files:
            assert part.fh is not None and part.path is not None and part.label is not None
            part.fh.close()
            try:
                kind = sniff(part.path)
            except LoadError as exc:
                raise UploadError(400, f"{part.label}: {exc.reason}" + (f"; {exc.hint}" if exc.hint else "")) from None
            final = self.folder / f"{uuid.uuid4().hex}.{_EXTENSIONS[kind]}"
            part.path.replace(final)
            part.path = final
            uploads.append(Upload(final, part.label))
        return uploads

    def discard(self) -> None:
        for part in self.files:
            if part.fh is not None:
                part.fh.close()
            if part.path is not None:
                part.path.unlink(missing_ok=True)


async def receive_uploads(
    headers: Mapping[str, str], stream: AsyncIterator[bytes], folder: Path, max_bytes: int, max_files: int = 100
) -> tuple[list[Upload], dict[str, list[str]]]:
    """Stream a multipart body into ``folder``: the stored files (checked by content) and the text fields.

    Raises:
        UploadError: not multipart (415), too large (413, as soon as the limit
            is passed), malformed, no file, or a file that is not a PDF/image (400).
            Nothing of the request is left in ``folder`` then.
    """
    import anyio
    from python_multipart.multipart import MultipartParser, parse_options_header
    from python_multipart.exceptions import FormParserError

    ctype, params = parse_options_header(headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or not params.get(b"boundary"):
        raise UploadError(415, "send the files as multipart/form-data, one 'file' field per file")
    length = headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes + _MAX_FIELD_BYTES + 64 * 1024:
        raise UploadError(413, f"upload over the limit of {max_bytes / 1e6:.0f} MB; "
                               "send fewer or smaller files, or raise the server's --max-upload-mb")
    folder.mkdir(parents=True, exist_ok=True)
    parts = _Collector(folder, max_bytes, max_files)
    try:
        parser = MultipartParser(params[b"boundary"], parts.callbacks())  # type: ignore[arg-type]
        async for chunk in stream:
            parser.write(chunk)
            await anyio.to_thread.run_sync(parts.flush)
        parser.finalize()
        if not parts.files:
            raise UploadError(400, "no file in the upload; send each file in a multipart field named 'file'")
        uploads = await anyio.to_thread.run_sync(parts.store)
    except FormParserError:
        parts.discard()
        raise UploadError(400, "malformed multipart body") from None
    except BaseException:
        parts.discard()
        raise
    return uploads, parts.fields
