"""Evidence files on disk: safe names, content sniffing and the content-addressed store.

A file is streamed into a temporary file inside the store while it is hashed, counted and sniffed,
then published under `<root>/<sha[:2]>/<sha[2:4]>/<sha>` by an atomic rename (identical content is
stored once). Nothing is left behind when an upload is refused: the temporary file always goes.
"""
from __future__ import annotations

import codecs
import hashlib
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .errors import ChangeflowError, ValidationFailed

CHUNK = 64 * 1024
HEAD = 4096
JSON_SNIFF_LIMIT = 2 * 1024 * 1024  # larger text files are text/plain without parsing
MAX_FILENAME = 255
OFFICE_TYPES = {
    "word/": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xl/": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "ppt/": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}
# Served with their own type (always as an attachment, nosniff); anything else — HTML, SVG, XML,
# unknown binaries — is served as application/octet-stream so no browser renders it.
SERVED_AS_IS = frozenset({"application/pdf", "image/png", "image/jpeg", "image/gif", "application/zip",
                          "application/gzip", "application/json", *OFFICE_TYPES.values()})
_MAGIC = ((b"%PDF-", "application/pdf"), (b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
          (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"), (b"PK\x03\x04", "application/zip"),
          (b"PK\x05\x06", "application/zip"), (b"\x1f\x8b", "application/gzip"))
_BINARY_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")  # tab, newlines, form feed, ESC are text
_HTML_START = re.compile(r"<(!doctype\s+html|html|head|body|script|iframe|frameset|title|style|meta|link|"
                         r"div|span|table|form|img|a|p|b|br|h[1-6]|font|object|embed|!--)[\s/>]")
_ACTIVE_MARKUP = ("<script", "<html", "<iframe", "<object", "<embed", "<body", "javascript:")


class EvidenceTooLarge(ChangeflowError):
    status = 413
    code = "payload_too_large"


def safe_filename(name: str | None) -> str:
    """The basename only, in `[A-Za-z0-9._ -]`, no leading dots or `..`, at most 255 characters."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch >= " " and ch != "\x7f")  # NUL and control characters go
    name = re.sub(r"[^A-Za-z0-9._ -]", "_", name)
    name = re.sub(r"\.{2,}", ".", name).strip(" .")  # no "..", no hidden files, no trailing dot
    if len(name) > MAX_FILENAME:
        _stem, dot, ext = name.rpartition(".")
        ext = dot + ext if dot and len(ext) <= 16 else ""
        name = name[:MAX_FILENAME - len(ext)].rstrip(" .") + ext
    return name or "evidence"


def served_type(content_type: str | None) -> str:
    """The Content-Type a download is sent with: never one a browser would render as a page."""
    if content_type == "text/plain":
        return "text/plain; charset=utf-8"
    return content_type if content_type in SERVED_AS_IS else "application/octet-stream"


class _Sniffer:
    """Decides the type from the bytes: magic numbers, then markup, JSON, UTF-8 text, or binary."""

    def __init__(self):
        self.head = b""
        self.text = True
        self._decoder = codecs.getincrementaldecoder("utf-8")()

    def feed(self, chunk: bytes) -> None:
        if len(self.head) < HEAD:
            self.head += chunk[:HEAD - len(self.head)]
        if self.text:
            try:
                self.text = not _BINARY_CONTROL.search(self._decoder.decode(chunk))
            except UnicodeDecodeError:
                self.text = False

    def content_type(self, path: Path, size: int) -> str:
        for magic, content_type in _MAGIC:
            if self.head.startswith(magic):
                return _office_type(path) if content_type == "application/zip" else content_type
        if self.text:
            try:
                self._decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                self.text = False
        if not self.text:
            return "application/octet-stream"
        start = self.head.decode("utf-8", "ignore").lstrip("\ufeff \t\r\n\f").lower()
        markup = _markup_type(start)
        if markup:
            return markup
        if start[:1] in ("{", "[") and size <= JSON_SNIFF_LIMIT:
            try:
                json.loads(path.read_text(encoding="utf-8-sig"))
                return "application/json"
            except ValueError:
                pass
        return "text/plain"


def _markup_type(start: str) -> str | None:
    if start.startswith("<?xml"):
        if "<svg" in start:
            return "image/svg+xml"
        return "application/xhtml+xml" if "<html" in start else "application/xml"
    if start.startswith("<svg"):
        return "image/svg+xml"
    if _HTML_START.match(start) or any(marker in start for marker in _ACTIVE_MARKUP):
        return "text/html"
    return None


def _office_type(path: Path) -> str:
    try:  # the central directory only: nothing is decompressed
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return "application/zip"
    if "[Content_Types].xml" in names:
        for prefix, content_type in OFFICE_TYPES.items():
            if any(n.startswith(prefix) for n in names):
                return content_type
    return "application/zip"


class StagedBlob:
    """A received file, hashed and sniffed, waiting in the store's temporary file to be published."""

    def __init__(self, store: EvidenceStore, temp_path: Path, sha256: str, size: int, content_type: str):
        self.store, self.temp_path = store, temp_path
        self.sha256, self.size, self.content_type = sha256, size, content_type
        self.created = False  # True once publish() put a new blob in place

    def publish(self) -> None:
        final = self.store.path_for(self.sha256)
        if final.exists():
            return  # the same content is already stored
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.temp_path, final)  # atomic; a concurrent identical upload writes the same bytes
        self.created = True
        _fsync_directory(final.parent)


class EvidenceStore:
    def __init__(self, root: Path, max_bytes: int):
        self.root = Path(root)
        self.max_bytes = max_bytes

    def path_for(self, sha256: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", sha256 or ""):
            raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    @contextmanager
    def stage(self, stream: BinaryIO, field: str = "file") -> Iterator[StagedBlob]:
        """Copy `stream` into the store, refusing empty and over-limit files; clean up on exit."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.root, prefix=".incoming-")
        temp_path = Path(name)
        try:
            digest, size, sniffer = hashlib.sha256(), 0, _Sniffer()
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(CHUNK):
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise EvidenceTooLarge(
                            f"The file is larger than the limit of {self.max_bytes} bytes; nothing was stored.",
                            errors=[{"field": field, "message": f"larger than {self.max_bytes} bytes"}],
                            max_bytes=self.max_bytes)
                    digest.update(chunk)
                    sniffer.feed(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if size == 0:
                raise ValidationFailed("The file is empty; nothing was stored.",
                                       errors=[{"field": field, "message": "is empty (0 bytes)"}])
            yield StagedBlob(self, temp_path, digest.hexdigest(), size, sniffer.content_type(temp_path, size))
        finally:
            temp_path.unlink(missing_ok=True)

    def discard(self, sha256: str) -> None:
        self.path_for(sha256).unlink(missing_ok=True)


def _fsync_directory(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
