"""The script engine every BPMN script, condition and DMN expression runs in.

SpiffWorkflow's default environment calls plain `exec`/`eval` over task data. Process owners upload
BPMN, so scripts are compiled with RestrictedPython instead: no imports, no underscore attributes,
guarded item/attribute access, and an allow-list of builtins and helper namespaces.
Service tasks are dispatched to the operator registry (`engine.operators`).
"""
from __future__ import annotations

import ast
import datetime as _dt
import json
import math
import operator as _op
import re
import threading
from functools import lru_cache
from types import ModuleType, SimpleNamespace

from RestrictedPython import compile_restricted_eval, compile_restricted_exec
from RestrictedPython.Eval import default_guarded_getitem, default_guarded_getiter
from RestrictedPython.Guards import (
    full_write_guard,
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
    safe_builtins,
    safer_getattr,
)
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment

from .business_time import business_days, now_iso


class ScriptRestrictionError(SyntaxError):
    """The script uses something the sandbox does not allow (found at compile time)."""


_EXTRA_BUILTINS = {
    name: __builtins__[name] if isinstance(__builtins__, dict) else getattr(__builtins__, name)
    for name in ("list", "dict", "tuple", "set", "frozenset", "min", "max", "sum", "sorted", "any",
                 "all", "enumerate", "zip", "reversed", "map", "filter")
}
_BUILTINS = {k: v for k, v in safe_builtins.items() if k not in {"__build_class__", "id", "hash"}}
_BUILTINS.update(_EXTRA_BUILTINS)

_INPLACE = {
    "+=": _op.iadd, "-=": _op.isub, "*=": _op.imul, "/=": _op.itruediv, "//=": _op.ifloordiv,
    "%=": _op.imod, "|=": _op.ior, "&=": _op.iand,
}


def _inplacevar(op: str, x, y):
    try:
        return _INPLACE[op](x, y)
    except KeyError:
        raise ScriptRestrictionError(f"operator {op} is not allowed") from None


# Curated namespaces rather than whole modules: a module object exposes everything it imported.
HELPERS = {
    "datetime": SimpleNamespace(datetime=_dt.datetime, date=_dt.date, timedelta=_dt.timedelta,
                                timezone=_dt.timezone),
    "math": SimpleNamespace(**{n: getattr(math, n) for n in (
        "ceil", "floor", "sqrt", "log", "log10", "exp", "fabs", "isclose", "pi", "e", "inf")}),
    "re": SimpleNamespace(match=re.match, search=re.search, fullmatch=re.fullmatch,
                          findall=re.findall, sub=re.sub, split=re.split, IGNORECASE=re.IGNORECASE),
    "json": SimpleNamespace(loads=json.loads, dumps=json.dumps),
    # timer expressions: `business_days(2)` → the moment two business days from now (ISO 8601)
    "business_days": business_days,
    "now_iso": now_iso,
}

BASE_GLOBALS = {
    "__builtins__": _BUILTINS,
    "_getattr_": safer_getattr,
    "_getitem_": default_guarded_getitem,
    "_getiter_": default_guarded_getiter,
    "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
    "_unpack_sequence_": guarded_unpack_sequence,
    "_write_": full_write_guard,
    "_inplacevar_": _inplacevar,
    **HELPERS,
}


def _raise_errors(result, source: str):
    if result.errors:
        raise ScriptRestrictionError("; ".join(result.errors))
    _refuse_imports(source)
    return result.code


def _refuse_imports(source: str) -> None:
    # RestrictedPython compiles `import` and leaves refusal to run time; say so at deploy instead.
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            raise ScriptRestrictionError(f"Line {node.lineno}: import statements are not allowed")


# CPython 3.11 can fail with "AST constructor recursion depth mismatch" when several threads build
# ASTs at once (gh-106905). Everything that parses Python or BPMN/DMN expressions takes this lock;
# results are cached, so it is rarely contended.
AST_LOCK = threading.RLock()
_COMPILE_LOCK = AST_LOCK


@lru_cache(maxsize=4096)
def compile_expression(expression: str):
    with _COMPILE_LOCK:
        return _raise_errors(compile_restricted_eval(expression), expression)


@lru_cache(maxsize=1024)
def compile_script(script: str):
    with _COMPILE_LOCK:
        return _raise_errors(compile_restricted_exec(script), script)


@lru_cache(maxsize=4096)
def _parses(expression: str) -> bool:
    with AST_LOCK:
        ast.parse(expression)
    return True


def check_script(source: str, *, expression: bool = False) -> str | None:
    """The reason `source` is refused by the sandbox, or None. Used when validating a deployment."""
    try:
        (compile_expression if expression else compile_script)(source)
    except SyntaxError as exc:
        return str(exc) if isinstance(exc, ScriptRestrictionError) else f"syntax error: {exc.msg} (line {exc.lineno})"
    return None


def _is_data(value) -> bool:
    return not (callable(value) or isinstance(value, (ModuleType, SimpleNamespace)))


class RestrictedEnvironment(BasePythonScriptEngineEnvironment):
    def _globals(self, context: dict, external_context: dict | None) -> dict:
        scope = dict(BASE_GLOBALS)
        scope.update(external_context or {})
        scope.update(context)
        return scope

    def evaluate(self, expression, context, external_context=None):
        return eval(compile_expression(expression), self._globals(context, external_context))

    def execute(self, script, context, external_context=None):
        scope = self._globals(context, external_context)
        exec(compile_script(script), scope)
        hidden = set(BASE_GLOBALS) | set(external_context or {})
        for name in [k for k in context if k not in scope]:
            del context[name]  # the script deleted it
        for name, value in scope.items():
            if name in hidden or name.startswith("_") or not _is_data(value):
                continue
            context[name] = value
        return True


class ChangeflowScriptEngine(PythonScriptEngine):
    """Restricted scripts plus service tasks dispatched to registered operators.

    One engine is made per command and carries that command's context (session, change, actor),
    so operators act inside the command's transaction without any global state.
    """

    def __init__(self, command=None, *, in_worker: bool = False):
        super().__init__(environment=RestrictedEnvironment())
        self.command = command
        self.in_worker = in_worker  # background operators run here instead of being deferred

    def defers(self, operation_name: str) -> bool:
        from .operators import runs_in_background

        return not self.in_worker and runs_in_background(operation_name)

    def defer_service_task(self, task) -> None:
        if self.command is None:
            raise RuntimeError("a background service task needs a command context")
        self.command.deferred.append(str(task.id))

    def validate(self, expression):
        # SpiffWorkflow's DMN engine calls this for every cell it evaluates.
        _parses(expression)

    def call_service(self, task, operation_name=None, operation_params=None, **kwargs):
        from .operators import run_operator  # operators import models; keep this module light

        params = {name: spec["value"] for name, spec in (operation_params or {}).items()}
        try:
            result = run_operator(operation_name, self.command, task, params)
        except WorkflowTaskException:
            raise
        except Exception as exc:
            raise WorkflowTaskException(
                f"Service task operator '{operation_name}' failed: {exc}", task=task, exception=exc
            ) from exc
        return json.dumps(result if result is not None else {}, default=str)
