"""Turning a bundle into SpiffWorkflow specs, and caching them per deployed version.

Parsing costs milliseconds; a request must never pay it. Specs are immutable once built, so one
copy per bundle hash is shared by every request and worker thread in the process.
"""
from __future__ import annotations

import threading
from collections import OrderedDict


from ..scripting import AST_LOCK
from .bundle import Bundle
from .parser import ChangeflowBpmnParser
from .safe_xml import parse_xml


def build_specs(bundle: Bundle, process_key: str):
    with AST_LOCK:  # the parsers build Python ASTs for expressions; see engine.scripting.AST_LOCK
        return _build_specs(bundle, process_key)


def _build_specs(bundle: Bundle, process_key: str):
    parser = ChangeflowBpmnParser()
    for name, xml in bundle.dmn.items():
        parser.add_dmn_xml(parse_xml(xml), filename=name)
    parser.add_bpmn_xml(parse_xml(bundle.bpmn_xml).getroottree(), filename=bundle.filename)
    spec = parser.get_spec(process_key)
    subprocess_specs = parser.get_subprocess_specs(process_key)
    return spec, subprocess_specs


class SpecCache:
    def __init__(self, size: int = 128):
        self._size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, version) -> tuple:
        """Specs for a ProcessVersion row, keyed by its bundle hash (ids differ between databases)."""
        with self._lock:
            if version.sha256 in self._items:
                self._items.move_to_end(version.sha256)
                return self._items[version.sha256]
        bundle = Bundle(version.bpmn_xml, version.filename, dict(version.dmn or {}), {})
        specs = build_specs(bundle, version.process_key)
        with self._lock:
            self._items[version.sha256] = specs
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return specs

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


SPECS = SpecCache()
