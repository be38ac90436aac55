"""Turning a bundle into SpiffWorkflow specs, and caching them per deployed version.

Parsing costs milliseconds; a request must never pay it. Specs are immutable once built, so one
copy per bundle hash is shared by every request and worker thread in the process. The version's
forms are cached the same way, so a task completion does not load the version's documents from
the database at all.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable


from SpiffWorkflow.bpmn.specs.data_spec import TaskDataReference
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import LoopTask

from ..scripting import APPROVAL_FACTS, AST_LOCK
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
    for process in (spec, *subprocess_specs.values()):
        _supply_facts_to_multi_instances(process)
        _connect_loop_instances(process)
    return spec, subprocess_specs


def _connect_loop_instances(process) -> None:
    """Wire each multi-instance (and loop) to hear its instances complete, before the spec is shared.

    SpiffWorkflow connects this only when a process creates the first instance, or when it restores
    a serialized spec; our specs come from the BPMN, so a process that had not opened a round
    itself completed the round's last approval and the multi-instance never finished (the change
    stayed in review). Connecting lazily would also race between two threads of one process."""
    for task_spec in process.task_specs.values():
        if isinstance(task_spec, LoopTask):
            instance_spec = process.task_specs[task_spec.task_spec]
            if not instance_spec.completed_event.is_connected(task_spec.merge_child):
                instance_spec.completed_event.connect(task_spec.merge_child)


class _SuppliedFact(TaskDataReference):
    """A multi-instance input naming an approval fact: read as it is when the instances start."""

    def get(self, my_task):
        my_task.workflow.script_engine.supply_approval_facts(my_task)
        return super().get(my_task)

    def exists(self, my_task):
        my_task.workflow.script_engine.supply_approval_facts(my_task)
        return super().exists(my_task)


def _supply_facts_to_multi_instances(process) -> None:
    # Scripts and conditions get the facts from the script engine; a multi-instance reads its input
    # from the task data directly, so its reference is swapped for one that asks first.
    for task_spec in process.task_specs.values():
        data_input = getattr(task_spec, "data_input", None)
        if isinstance(data_input, TaskDataReference) and data_input.bpmn_id in APPROVAL_FACTS:
            supplied = _SuppliedFact(data_input.bpmn_id, data_input.bpmn_name)
            if task_spec.data_output is data_input:  # SpiffWorkflow tells "update in place" by identity
                task_spec.data_output = supplied
            task_spec.data_input = supplied


def _specs_of(version) -> tuple:
    bundle = Bundle(version.bpmn_xml, version.filename, dict(version.dmn or {}), {})
    return build_specs(bundle, version.process_key)


def _forms_of(version) -> dict:
    """Form name → document text (JSON Schema or UI schema) of the version's snapshot. The same
    text object every time, so `engine.forms` finds its compiled validator without rehashing."""
    return dict(version.forms or {})


class VersionCache:
    """What is built from a ProcessVersion row, keyed by its bundle hash (ids differ between databases).

    Callers must not change what they get: it is shared by every thread of the process.
    """

    def __init__(self, build: Callable, size: int = 128):
        self._build, self._size = build, size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, version):
        with self._lock:
            if version.sha256 in self._items:
                self._items.move_to_end(version.sha256)
                return self._items[version.sha256]
        built = self._build(version)
        with self._lock:
            self._items[version.sha256] = built
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return built

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


SPECS = VersionCache(_specs_of)
FORMS = VersionCache(_forms_of)
