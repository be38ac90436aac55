"""The compile-time half of the sandbox: RestrictedPython's transformer, tightened.

On top of RestrictedPython's rules (no imports, no `_` names or attributes, guarded attribute and
item access), scripts and expressions are compiled so that

- `+ * ** << %` call size-checked helpers (`_add_`, `_mul_`, …, `engine.sandbox_guards`), and so do
  f-strings (`_format_`, `_fjoin_`) and displays with starred items (`_display_`);
- every `except` and `finally` block starts with `_limit_check_()`, so a script cannot catch its way
  past an exhausted CPU budget (`engine.sandbox_limits`);
- what is certain to fail is refused here, at deploy time, with its line: class definitions,
  generator functions, names of file, code and introspection functions (`open`, `getattr`,
  `globals`, …), `while True` without a `break`, and constant arithmetic whose result is over the
  size limit (`10 ** 10 ** 10`).
"""
from __future__ import annotations

import ast
import operator as _op

from RestrictedPython import RestrictingNodeTransformer

from . import sandbox_guards as guards
from .sandbox_limits import ScriptLimitError

_OPERATORS = {ast.Add: "_add_", ast.Mult: "_mul_", ast.Pow: "_pow_", ast.LShift: "_lshift_", ast.Mod: "_mod_"}
_FOLD = {ast.Add: guards.add, ast.Mult: guards.mul, ast.Pow: guards.power, ast.LShift: guards.lshift,
         ast.Mod: guards.mod, ast.Sub: _op.sub, ast.FloorDiv: _op.floordiv, ast.Div: _op.truediv,
         ast.RShift: _op.rshift, ast.BitOr: _op.or_, ast.BitAnd: _op.and_, ast.BitXor: _op.xor}
FORBIDDEN_NAMES = frozenset({
    "open", "eval", "exec", "compile", "globals", "locals", "vars", "dir", "getattr", "hasattr",
    "setattr", "delattr", "breakpoint", "memoryview", "bytearray", "help", "exit", "quit", "super",
})


class _NotConstant(Exception):
    pass


def _call(name: str, *args: ast.expr) -> ast.Call:
    return ast.Call(func=ast.Name(name, ast.Load()), args=list(args), keywords=[])


def _constant(node: ast.AST):
    """The value of constant arithmetic, computed with the same size checks as at run time."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, complex, str, bytes)):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _constant(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _FOLD:
        return _FOLD[type(node.op)](_constant(node.left), _constant(node.right))
    raise _NotConstant


def _breaks_out(body: list[ast.stmt]) -> bool:
    """A `break` of this loop (not of a nested one), or a return/raise anywhere in it."""
    stack = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Break, ast.Return, ast.Raise)):
            return True
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        if isinstance(node, (ast.For, ast.AsyncFor, ast.While)):
            if any(isinstance(inner, (ast.Return, ast.Raise)) for inner in ast.walk(node)):
                return True
            stack.extend(node.orelse)  # a break there leaves the outer loop
            continue
        stack.extend(ast.iter_child_nodes(node))
    return False


class LimitingTransformer(RestrictingNodeTransformer):
    def visit(self, node):
        node = super().visit(node)
        if isinstance(node, (ast.Module, ast.Expression)):
            ast.fix_missing_locations(node)
        return node

    def visit_BinOp(self, node):
        if not getattr(node, "_folded", False):
            self._refuse_huge_constant(node)
        node = self.node_contents_visit(node)
        helper = _OPERATORS.get(type(node.op))
        if helper is None:
            return node
        return ast.copy_location(_call(helper, node.left, node.right), node)

    def _refuse_huge_constant(self, node: ast.BinOp) -> None:
        try:
            _constant(node)
        except _NotConstant:
            return  # the constant parts inside it get their own turn
        except ScriptLimitError as exc:
            self.error(node, f"{exc} (constant expression)")
        except Exception:  # noqa: BLE001 — an error (1 / 0) the script may handle at run time
            pass
        for child in ast.walk(node):
            child._folded = True  # folded once, as a whole

    def visit_JoinedStr(self, node):
        parts = []
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                spec = self.visit(value.format_spec) if value.format_spec is not None else ast.Constant("")
                parts.append(_call("_format_", self.visit(value.value), ast.Constant(value.conversion), spec))
            else:
                parts.append(self.visit(value))
        return ast.copy_location(_call("_fjoin_", *parts), node)

    def _display(self, node, kind: str):
        node = self.node_contents_visit(node)
        if not isinstance(getattr(node, "ctx", ast.Load()), ast.Load) \
                or not any(isinstance(e, ast.Starred) for e in node.elts):
            return node
        parts = [e.value if isinstance(e, ast.Starred) else ast.Tuple([e], ast.Load()) for e in node.elts]
        return ast.copy_location(_call("_display_", ast.Constant(kind), *parts), node)

    def visit_List(self, node):
        return self._display(node, "list")

    def visit_Tuple(self, node):
        return self._display(node, "tuple")

    def visit_Set(self, node):
        return self._display(node, "set")

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Load) and node.id in FORBIDDEN_NAMES:
            self.error(node, f'"{node.id}" is not available in scripts (no file, code or introspection functions)')
        return super().visit_Name(node)

    def visit_ClassDef(self, node):
        self.error(node, "class definitions are not allowed in scripts")
        return node

    def visit_Yield(self, node):
        # A suspended generator's finally block would run when it is collected, outside any budget.
        self.error(node, "generator functions (yield) are not allowed in scripts; use a list")
        return node

    visit_YieldFrom = visit_Yield

    def visit_While(self, node):
        test = node.test
        if isinstance(test, ast.Constant) and test.value and not _breaks_out(node.body):
            self.error(node, "this while loop has no break: it would only stop at the CPU-time limit")
        return super().visit_While(node)

    def visit_ExceptHandler(self, node):
        node = super().visit_ExceptHandler(node)
        node.body.insert(0, ast.Expr(_call("_limit_check_")))
        return node

    def visit_Try(self, node):
        node = super().visit_Try(node)
        if node.finalbody:
            node.finalbody.insert(0, ast.Expr(_call("_limit_check_")))
        return node
