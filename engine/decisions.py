"""Evaluating a deployed DMN decision outside a running process (e.g. risk before a process starts).

The decision runs in the same sandboxed script engine as inside a process, against plain data.
Parsed decision tables are cached per SHA-256 of the DMN XML: a DMN file never changes under its hash.
"""
from __future__ import annotations

import hashlib
from types import SimpleNamespace

from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser

from .bpmn.safe_xml import parse_xml
from .errors import WorkflowFailure
from .scripting import AST_LOCK, ChangeflowScriptEngine

RISK_ORDER = ("low", "moderate", "high")

_ENGINES: dict[str, dict] = {}  # sha256 of a DMN file → {decision id: DMNEngine}
_LOCK = AST_LOCK  # parsing builds Python ASTs; see engine.scripting.AST_LOCK


def _engines_of(xml: str) -> dict:
    sha = hashlib.sha256(xml.encode("utf-8")).hexdigest()
    with _LOCK:  # parsing is rare; holding the lock keeps the parser's lazy state single-threaded
        if sha not in _ENGINES:
            parser = SpiffBpmnParser()
            parser.add_dmn_xml(parse_xml(xml))
            _ENGINES[sha] = {decision: parser.get_engine(decision, None) for decision in parser.dmn_parsers}
        return _ENGINES[sha]


def _engine(version, decision_id: str):
    for xml in (version.dmn or {}).values():
        engines = _engines_of(xml)
        if decision_id in engines:
            return engines[decision_id]
    raise WorkflowFailure(f"Decision '{decision_id}' is not part of {version.process_key} version "
                          f"{version.version}.", element_id=None, process_key=version.process_key)


def evaluate_decision(version, decision_id: str, data: dict) -> dict:
    """The decision's outputs for `data` (for hit policy COLLECT, each output is a list)."""
    task = _standalone_task(decision_id, data)
    try:
        return _engine(version, decision_id).result(task)
    except SpiffWorkflowException as exc:
        raise WorkflowFailure(f"Decision '{decision_id}' failed: {exc}", element_id=None,
                              process_key=version.process_key) from exc


def _standalone_task(decision_id: str, data: dict) -> SimpleNamespace:
    """What the DMN engine and SpiffWorkflow's errors read from a task, without a workflow around it.

    A failing cell (a sandbox limit, an unknown variable) raises WorkflowTaskException, which names
    the task's spec and walks up its workflows: without these it would fail with an AttributeError.
    """
    workflow = SimpleNamespace(script_engine=ChangeflowScriptEngine(), spec=SimpleNamespace(file=decision_id),
                               parent_workflow=None)
    workflow.top_workflow = workflow
    spec = SimpleNamespace(bpmn_id=None, bpmn_name=f"Decision '{decision_id}'")
    return SimpleNamespace(data=dict(data), workflow=workflow, task_spec=spec)


def highest_risk(levels) -> str:
    """The highest of the fired risk levels, "low" when none fired (as the Assess risk post-script)."""
    fired = [level for level in levels or [] if level in RISK_ORDER]
    return max(fired, key=RISK_ORDER.index, default="low")
