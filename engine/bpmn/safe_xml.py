"""XML parsing that never resolves entities, loads DTDs or touches the network.

Uploaded diagrams come from process owners' browsers; a DOCTYPE is refused outright, which rules out
XXE and entity-expansion bombs before lxml sees the document.
"""
from __future__ import annotations

import re

from lxml import etree

MAX_BYTES = 5 * 1024 * 1024
MAX_DEPTH = 256
_DOCTYPE = re.compile(rb"<!DOCTYPE|<!ENTITY", re.IGNORECASE)
_DECLARED_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
ALLOWED_ENCODINGS = {"utf-8", "utf8", "us-ascii", "ascii"}


class XmlRejected(ValueError):
    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.line = line


def _parser() -> etree.XMLParser:
    # A parser per call: lxml parser objects must not be shared between threads.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           dtd_validation=False, huge_tree=False, remove_blank_text=False)


def parse_xml(data: str | bytes, *, max_bytes: int = MAX_BYTES) -> etree._Element:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise XmlRejected(f"document is {len(raw)} bytes; the limit is {max_bytes}")
    declared = _DECLARED_ENCODING.match(raw)
    if declared and declared.group(1).decode("ascii").lower() not in ALLOWED_ENCODINGS:
        # Other encodings (UTF-7 above all) can spell "<!DOCTYPE" so that a byte scan misses it.
        raise XmlRejected(f"the document declares encoding {declared.group(1).decode('ascii')}; "
                          "documents must be UTF-8", 1)
    match = _DOCTYPE.search(raw)
    if match:
        line = raw[: match.start()].count(b"\n") + 1
        raise XmlRejected("DOCTYPE and ENTITY declarations are not allowed", line)
    try:
        root = etree.fromstring(raw, _parser())
    except etree.XMLSyntaxError as exc:
        raise XmlRejected(f"not well-formed XML: {exc.msg}", exc.lineno) from None
    if root is None:
        raise XmlRejected("empty document")
    if root.getroottree().docinfo.doctype:
        raise XmlRejected("DOCTYPE and ENTITY declarations are not allowed", 1)
    for entity in root.iter(etree.Entity):
        raise XmlRejected("entity references are not allowed", entity.sourceline)
    _check_depth(root)
    return root


def _check_depth(root: etree._Element) -> None:
    stack = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise XmlRejected(f"elements are nested deeper than {MAX_DEPTH} levels", element.sourceline)
        stack.extend((child, depth + 1) for child in element)
