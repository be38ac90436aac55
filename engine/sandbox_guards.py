"""Guarded operations for sandboxed scripts: no single step may build a gigantic value.

A CPU-time budget cannot interrupt one C-level operation, and `10 ** 10 ** 10`, `"a" * 10 ** 10`,
`s.ljust(10 ** 10)` or `f"{1:>{10 ** 10}}"` are one operation each. `engine.sandbox_policy` rewrites
those operators, f-strings and starred displays into calls of the helpers here, and attribute
access hands out checked versions of the string and list methods that can amplify. Each helper
works out the size of the result *before* building it and refuses what is over
`ScriptLimits.max_length` (characters or items; bits for integers).
"""
from __future__ import annotations

import operator as _op
import re as _re

from .sandbox_limits import UNTRACED, ScriptLimitError, current, json_size

UNTRACED.add(__file__)

_SEQUENCES = (str, bytes, list, tuple)
_TEXT = (str, bytes)
_MODPOW_BITS = 4096  # pow(a, b, m): cost grows with the bits of b and m, not with the result
_PRINTF = _re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_PRINTF_BYTES = _re.compile(rb"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_DIGITS = _re.compile(r"\d+")


def check_length(size: int, what: str = "the value") -> None:
    limit = current().max_length
    if size > limit:
        raise ScriptLimitError(f"{what} would be too large ({size:,} characters or items; "
                               f"the limit is {limit:,})")


def _check_bits(bits: int) -> None:
    limit = current().max_length
    if bits > limit:
        raise ScriptLimitError(f"the number would be too large (about {bits:,} bits; the limit is {limit:,})")


def check_weight(value, what: str = "the value") -> None:
    """A container written out as text (str, repr, %, f-string, JSON) stays under the length limit."""
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        limit = current().max_length
        if json_size(value, limit) > limit:
            raise ScriptLimitError(f"{what} is too large to write out (over {limit:,} characters)")


def _number(value, default: int = 0) -> int:
    return value if isinstance(value, int) else default


# -- operators (`a + b` becomes `_add_(a, b)`, and so on) --------------------------------------

def check_add(a, b) -> None:
    if isinstance(a, _SEQUENCES) and isinstance(b, _SEQUENCES):
        check_length(len(a) + len(b))


def check_mul(a, b) -> None:
    if isinstance(a, int) and isinstance(b, int):
        _check_bits(a.bit_length() + b.bit_length())
    elif isinstance(a, _SEQUENCES) and isinstance(b, int):
        check_length(len(a) * b)
    elif isinstance(b, _SEQUENCES) and isinstance(a, int):
        check_length(len(b) * a)


def check_pow(a, b, mod=None) -> None:
    if not (isinstance(a, int) and isinstance(b, int)) or b <= 1:
        return
    if mod is not None:
        if max(b.bit_length(), _number(mod).bit_length()) > _MODPOW_BITS:
            raise ScriptLimitError(f"pow() with a modulus takes numbers of at most {_MODPOW_BITS} bits")
    elif abs(a) > 1:
        _check_bits((abs(a).bit_length() - 1) * b)


def check_lshift(a, b) -> None:
    if isinstance(a, int) and isinstance(b, int) and a:
        _check_bits(a.bit_length() + b)


def check_mod(text, args) -> None:
    """`"%*d" % (10 ** 9, 1)` and `"%999999999s"` pad in C: add up widths and arguments first."""
    if not isinstance(text, _TEXT):
        return
    star = "*" if isinstance(text, str) else b"*"
    size, stars = len(text), False
    for match in (_PRINTF if isinstance(text, str) else _PRINTF_BYTES).finditer(text):
        for group in match.groups():
            if group == star:
                stars = True
            elif group:
                size += int(group) if len(group) < 10 else 10 ** 10
    if stars:
        size += sum(abs(a) for a in (args if isinstance(args, tuple) else (args,)) if isinstance(a, int))
    check_length(size + json_size(args, current().max_length))


def _guarded(check, operation):
    def run(a, b):
        check(a, b)
        return operation(a, b)
    run.__name__ = operation.__name__
    return run


add, mul, lshift, mod = (_guarded(check_add, _op.add), _guarded(check_mul, _op.mul),
                         _guarded(check_lshift, _op.lshift), _guarded(check_mod, _op.mod))


def power(a, b, modulus=None):
    check_pow(a, b, modulus)
    return pow(a, b) if modulus is None else pow(a, b, modulus)


def materialized(values):
    # An iterator over the list being extended would grow it forever inside C: copy it first.
    return values if isinstance(values, (list, tuple, str, bytes, dict, set, frozenset, range)) else list(values)


def _iadd(x, y):
    if isinstance(x, list):
        y = materialized(y)
        check_length(len(x) + len(y))
        return _op.iadd(x, y)
    check_add(x, y)
    return _op.iadd(x, y)


_INPLACE = {
    "+=": _iadd, "-=": _op.isub, "*=": _guarded(check_mul, _op.imul), "/=": _op.itruediv,
    "//=": _op.ifloordiv, "%=": _guarded(check_mod, _op.imod), "**=": power,
    "<<=": _guarded(check_lshift, _op.ilshift), ">>=": _op.irshift, "|=": _op.ior, "&=": _op.iand,
    "^=": _op.ixor,
}


def inplacevar(operator: str, x, y):
    try:
        operation = _INPLACE[operator]
    except KeyError:
        raise TypeError(f"operator {operator} is not allowed") from None
    return operation(x, y)


# -- f-strings, displays, text conversions -----------------------------------------------------

def format_value(value, conversion: int, spec: str) -> str:
    """One `{value!conversion:spec}` field of an f-string."""
    check_weight(value)
    if conversion == 115:
        value = str(value)
    elif conversion == 114:
        value = repr(value)
    elif conversion == 97:
        value = ascii(value)
    for digits in _DIGITS.findall(spec):
        check_length(int(digits) if len(digits) < 10 else 10 ** 10, "the formatted field")
    return format(value, spec)


def join_fstring(*parts: str) -> str:
    check_length(sum(map(len, parts)), "the f-string")
    return "".join(parts)


def build_display(kind: str, *parts):
    """`[*a, *b]`, `(*a, x)`, `{*a}`: each part is a starred iterable or a 1-tuple of one item."""
    parts = [materialized(part) for part in parts]
    check_length(sum(map(len, parts)))
    items = [item for part in parts for item in part]
    return items if kind == "list" else tuple(items) if kind == "tuple" else set(items)


class _StrType(type):
    """`str` in scripts: the same type for isinstance(), a checked conversion when called."""

    def __call__(cls, *args, **kwargs):
        if args:
            check_weight(args[0])
        return str(*args, **kwargs)

    def __instancecheck__(cls, instance):
        return isinstance(instance, str)

    def __subclasscheck__(cls, subclass):
        return issubclass(subclass, str)

    def __repr__(cls):
        return "<class 'str'>"


class SafeStr(metaclass=_StrType):
    pass


def safe_repr(value) -> str:
    check_weight(value)
    return repr(value)


def guarded_range(*args) -> range:
    values = range(*args)
    try:
        size = len(values)
    except OverflowError:
        size = 10 ** 19
    check_length(size, "the range")
    return values


def guarded_sum(values, start=0):
    if not isinstance(start, (int, float, complex)):
        raise ScriptLimitError("sum() adds numbers in scripts; join lists with + or extend()")
    return sum(values, start)
