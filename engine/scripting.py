"""The script engine every BPMN script, condition and DMN expression runs in.

SpiffWorkflow's default environment calls plain `exec`/`eval` over task data. Process owners upload
BPMN, so scripts are compiled with RestrictedPython instead: no imports, no underscore attributes,
guarded item/attribute access, and an allow-list of builtins and helper namespaces. Each run has a
CPU-time budget, no single operation may build a gigantic value, and what a script leaves (or an
expression returns) has a size limit — see `engine.sandbox_policy`, `engine.sandbox_guards`,
`engine.sandbox_methods` and `engine.sandbox_limits`; docs/security.md describes the whole.
Service tasks are dispatched to the operator registry (`engine.operators`).
"""
from __future__ import annotations

import ast
import datetime as _dt
import json
import math
import threading
import traceback
from functools import lru_cache
from types import CodeType, ModuleType, SimpleNamespace

from RestrictedPython import compile_restricted_eval, compile_restricted_exec
from RestrictedPython.Eval import default_guarded_getitem, default_guarded_getiter
from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence, safe_builtins
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment

from . import sandbox_guards as guards
from .business_time import business_days, now_iso
from .sandbox_limits import SANDBOX_FILENAME, ScriptLimitError, check_output, cpu_budget, current, json_size, \
    limit_check
from .sandbox_methods import JSON, RE, guarded_getattr, guarded_write
from .sandbox_policy import LimitingTransformer


class ScriptRestrictionError(SyntaxError):
    """The script uses something the sandbox does not allow (found at compile time)."""


_EXTRA_BUILTINS = {
    name: __builtins__[name] if isinstance(__builtins__, dict) else getattr(__builtins__, name)
    for name in ("list", "dict", "tuple", "set", "frozenset", "min", "max", "sum", "sorted", "any",
                 "all", "enumerate", "zip", "reversed", "map", "filter")
}
_BUILTINS = {k: v for k, v in safe_builtins.items() if k not in {"__build_class__", "id", "hash"}}
_BUILTINS.update(_EXTRA_BUILTINS)
_BUILTINS.update(range=guards.guarded_range, sum=guards.guarded_sum, pow=guards.power, str=guards.SafeStr,
                 repr=guards.safe_repr)


# Curated namespaces rather than whole modules: a module object exposes everything it imported.
HELPERS = {
    "datetime": SimpleNamespace(datetime=_dt.datetime, date=_dt.date, timedelta=_dt.timedelta,
                                timezone=_dt.timezone),
    "math": SimpleNamespace(**{n: getattr(math, n) for n in (
        "ceil", "floor", "sqrt", "log", "log10", "exp", "fabs", "isclose", "pi", "e", "inf")}),
    "re": RE,  # on the `regex` module, with the CPU budget as timeout
    "json": JSON,
    # timer expressions: `business_days(2)` → the moment two business days from now (ISO 8601)
    "business_days": business_days,
    "now_iso": now_iso,
}

BASE_GLOBALS = {
    "__builtins__": _BUILTINS,
    "_getattr_": guarded_getattr,
    "_getitem_": default_guarded_getitem,
    "_getiter_": default_guarded_getiter,
    "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
    "_unpack_sequence_": guarded_unpack_sequence,
    "_write_": guarded_write,
    "_inplacevar_": guards.inplacevar,
    "_add_": guards.add, "_mul_": guards.mul, "_pow_": guards.power, "_lshift_": guards.lshift,
    "_mod_": guards.mod, "_format_": guards.format_value, "_fjoin_": guards.join_fstring,
    "_display_": guards.build_display, "_limit_check_": limit_check,
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


def compile_expression(expression: str):
    return _compiled(expression, "eval", current().max_length)


def compile_script(script: str):
    return _compiled(script, "exec", current().max_length)


@lru_cache(maxsize=4096)
def _compiled(source: str, mode: str, max_length: int):
    # max_length is part of the key: constant expressions are checked against it while compiling.
    compile_restricted = compile_restricted_eval if mode == "eval" else compile_restricted_exec
    with _COMPILE_LOCK:
        return _raise_errors(compile_restricted(source, SANDBOX_FILENAME, policy=LimitingTransformer), source)


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
    except (RecursionError, MemoryError):
        return "the code is nested too deeply"
    return None


def _is_data(value) -> bool:
    # Functions, helper namespaces and spent iterators a script leaves behind are not task data.
    return not (callable(value) or hasattr(value, "__next__") or isinstance(value, (ModuleType, SimpleNamespace)))


@lru_cache(maxsize=1024)
def _names_in(code: CodeType) -> frozenset[str]:
    names = set(code.co_names) | set(code.co_varnames)
    for const in code.co_consts:
        if isinstance(const, CodeType):
            names |= _names_in(const)
    return frozenset(names)


def _touched(name: str, value, before: dict, named: frozenset[str]) -> bool:
    # New or rebound names, and containers the script names (it may have changed them in place).
    if name not in before or before[name] is not value:
        return True
    return name in named and isinstance(value, (list, dict, set))


def _tame(exc: BaseException) -> None:
    """A script can raise with a huge or self-similar value; keep its arguments short text."""
    exc.args = tuple(_short(arg) for arg in exc.args)


def _short(value, limit: int = 2000) -> str:
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + "…"
    if json_size(value, limit) > limit:
        return f"<{type(value).__name__} too large to show>"
    return _short(repr(value), limit)


class RestrictedEnvironment(BasePythonScriptEngineEnvironment):
    def _globals(self, context: dict, external_context: dict | None) -> dict:
        scope = dict(BASE_GLOBALS)
        scope.update(external_context or {})
        scope.update(context)
        return scope

    def _run(self, code, scope: dict):
        try:
            with cpu_budget(current()):
                return eval(code, scope)  # noqa: S307 — restricted code, see the module docstring
        except ScriptLimitError:
            raise
        except Exception as exc:
            _tame(exc)
            raise

    def evaluate(self, expression, context, external_context=None):
        value = self._run(compile_expression(expression), self._globals(context, external_context))
        check_output(value, "value of the expression")
        return value

    def execute(self, script, context, external_context=None):
        scope, code = self._globals(context, external_context), compile_script(script)
        self._run(code, scope)
        hidden = set(BASE_GLOBALS) | set(external_context or {})
        left = {name: value for name, value in scope.items()
                if not (name in hidden or name.startswith("_") or not _is_data(value))}
        named = _names_in(code)
        check_output({name: value for name, value in left.items() if _touched(name, value, context, named)},
                     "data the script leaves")
        for name in [k for k in context if k not in scope]:
            del context[name]  # the script deleted it
        context.update(left)
        return True


# Variables Changeflow supplies rather than the process: read the moment a step names them (a script,
# a condition, a multi-instance's input; engine.bpmn.specs), so a step that names none pays nothing.
APPROVAL_FACTS = frozenset({"service_owners", "cab_members"})


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

    def refresh_decision_facts(self, task) -> None:
        """Put the change's current risk facts into the data a decision table is about to read."""
        if self.command is None:  # a read-only load (traces) runs nothing
            return
        from .projection import risk_inputs

        task.set_data(**risk_inputs(self.command.session, self.command.change))

    def supply_approval_facts(self, task) -> None:
        """Put who owns the services and who sits on the CAB, as they are now, into the task's data."""
        if self.command is not None:  # a read-only load (traces) runs nothing
            task.set_data(**self.command.approval_facts())

    def _supply_what_is_named(self, task, compile_code, source) -> None:
        if self.command is None:
            return
        try:
            names = _names_in(compile_code(source))
        except (SyntaxError, RecursionError, MemoryError):
            return  # running it reports the problem
        if names & APPROVAL_FACTS:
            self.supply_approval_facts(task)

    def validate(self, expression):
        # SpiffWorkflow's DMN engine calls this for every cell it evaluates.
        _parses(expression)

    def execute(self, task, script, external_context=None):
        self._supply_what_is_named(task, compile_script, script)
        return super().execute(task, script, external_context)

    def evaluate(self, task, expression, external_context=None):
        self._supply_what_is_named(task, compile_expression, expression)
        try:
            return super().evaluate(task, expression, external_context)
        except WorkflowTaskException as exc:
            cause = exc.__context__  # SpiffWorkflow keeps only the type name of what it wraps
            if not isinstance(cause, (ScriptLimitError, ScriptRestrictionError)):
                raise
            what = "was stopped" if isinstance(cause, ScriptLimitError) else "is refused by the script sandbox"
            raise WorkflowTaskException(f"the expression '{_short(expression, 200)}' {what}: {cause}",
                                        task=task, exception=cause) from cause

    def create_task_exec_exception(self, task, script, err):
        if not isinstance(err, ScriptLimitError):
            return super().create_task_exec_exception(task, script, err)
        line_number, error_line = self.get_error_line_number_and_content(script, err)
        return WorkflowTaskException(f"the script was stopped: {err}", task=task, exception=err,
                                     line_number=line_number, error_line=error_line)

    def get_error_line_number_and_content(self, script, err):
        # SpiffWorkflow looks for frames of "<string>"; scripts are compiled under SANDBOX_FILENAME.
        line_number = err.lineno if isinstance(err, SyntaxError) else 0
        if not line_number:
            for frame in traceback.extract_tb(err.__traceback__):
                if frame.filename == SANDBOX_FILENAME:
                    line_number = frame.lineno
        lines = script.splitlines()
        return line_number, lines[line_number - 1] if 0 < (line_number or 0) <= len(lines) else ""

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
