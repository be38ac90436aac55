"""What scripts reach through attributes, item assignment and the json/re helpers, size-checked.

`_getattr_` (every `obj.name` in a script) is RestrictedPython's `safer_getattr` — no `_` names, no
frame/code/traceback attributes, no `str.format` — plus checked versions of the methods that can
build a huge value in one C call (`ljust`, `replace`, `join`, `extend`, …). Regular expressions run
on the `regex` module, which can stop a catastrophically backtracking match: it gets what is left
of the script's CPU budget as its timeout.
"""
from __future__ import annotations

import json as _json
from types import MethodType, SimpleNamespace

import regex
from RestrictedPython.Guards import full_write_guard, safer_getattr

from .sandbox_guards import SafeStr, check_length, materialized, check_weight
from .sandbox_limits import UNTRACED, ScriptLimitError, active_budget, current

UNTRACED.add(__file__)

_TEXT = (str, bytes)


def _padding(name):
    def method(text, width, *args):
        check_length(width if isinstance(width, int) else 0, "the padded text")
        return getattr(text, name)(width, *args)
    method.__name__ = name
    return method


def _expandtabs(text, tabsize=8):
    tab = "\t" if isinstance(text, str) else b"\t"
    check_length(len(text) + text.count(tab) * max(tabsize, 0), "the expanded text")
    return text.expandtabs(tabsize)


def _replace(text, old, new, count=-1):
    found = text.count(old) if old else len(text) + 1
    if count >= 0:
        found = min(found, count)
    check_length(len(text) + found * max(len(new) - len(old), 0), "the replaced text")
    return text.replace(old, new, count)


def _join(separator, values):
    values = materialized(values)
    size = sum(len(v) for v in values if isinstance(v, _TEXT)) + len(separator) * max(len(values) - 1, 0)
    check_length(size, "the joined text")
    return separator.join(values)


def _translate(text, table):
    longest = 1
    if isinstance(table, dict):
        longest = max((len(v) for v in table.values() if isinstance(v, _TEXT)), default=1)
    check_length(len(text) * max(longest, 1), "the translated text")
    return text.translate(table)


def _extend(items: list, values) -> None:
    values = materialized(values)
    check_length(len(items) + len(values), "the list")
    items.extend(values)


_METHODS = {name: (_TEXT, _padding(name)) for name in ("center", "ljust", "rjust", "zfill")}
_METHODS.update({
    "expandtabs": (_TEXT, _expandtabs), "replace": (_TEXT, _replace), "join": (_TEXT, _join),
    "translate": (_TEXT, _translate), "extend": (list, _extend),
})


def guarded_getattr(obj, name, default=None):
    if obj is SafeStr:
        obj = str  # `str.join(...)` in a script means the real type's method
    value = safer_getattr(obj, name, default)
    checked = _METHODS.get(name)
    if checked is None:
        return value
    kinds, method = checked
    if isinstance(obj, kinds):
        return MethodType(method, obj)
    if isinstance(obj, type) and issubclass(obj, kinds):
        return method  # unbound, as `str.join(separator, values)`
    return value


class _ListWriter:
    """`_write_(items)[k] = v` for a list: `items[len(items):] = items` doubles it in one step."""

    __slots__ = ("_items",)

    def __init__(self, items: list):
        object.__setattr__(self, "_items", items)

    def __setitem__(self, key, value):
        items = self._items
        if isinstance(key, slice):
            value = materialized(value)
            check_length(len(items) - len(range(*key.indices(len(items)))) + len(value), "the list")
        items[key] = value

    def __delitem__(self, key):
        del self._items[key]

    def __setattr__(self, name, value):
        raise TypeError("attribute-less object (assign or del)")


def guarded_write(obj):
    return _ListWriter(obj) if type(obj) is list else full_write_guard(obj)


# -- json ---------------------------------------------------------------------------------------

def _refuse_cls(kwargs) -> None:
    if "cls" in kwargs:
        raise TypeError("json: the cls argument is not available in scripts")


def json_dumps(obj, **kwargs) -> str:
    _refuse_cls(kwargs)
    check_weight(obj)
    indent = kwargs.get("indent")
    separators = kwargs.get("separators") or ()
    if (isinstance(indent, int) and indent > 16) or (isinstance(indent, str) and len(indent) > 16) \
            or any(isinstance(s, str) and len(s) > 16 for s in separators):
        raise ScriptLimitError("json.dumps: indent and separators may be at most 16 characters")
    return _json.dumps(obj, **kwargs)


def json_loads(text, **kwargs):
    _refuse_cls(kwargs)
    return _json.loads(text, **kwargs)


# -- regular expressions ------------------------------------------------------------------------

def _timeout() -> float:
    budget = active_budget()
    return budget.remaining() if budget is not None else current().cpu_seconds


def _run_regex(function, *args, **kwargs):
    try:
        return function(*args, timeout=_timeout(), **kwargs)
    except TimeoutError:
        budget = active_budget()
        if budget is not None:
            raise budget.fail() from None
        raise ScriptLimitError("the regular expression ran over the CPU-time limit") from None


def _sub(pattern, repl, string, count=0, flags=0):
    written = [len(string)]
    limit = current().max_length

    def replacement(match):
        # Group references (\1, \g<0>) expand per match: count what is written as it is written.
        text = repl(match) if callable(repl) else match.expand(repl)
        if isinstance(text, (str, bytes)):
            written[0] += len(text)
            if written[0] > limit:
                raise ScriptLimitError(f"re.sub would write more than {limit:,} characters")
        return text

    return _run_regex(regex.sub, pattern, replacement, string, count=count, flags=flags)


RE = SimpleNamespace(
    match=lambda pattern, string, flags=0: _run_regex(regex.match, pattern, string, flags=flags),
    search=lambda pattern, string, flags=0: _run_regex(regex.search, pattern, string, flags=flags),
    fullmatch=lambda pattern, string, flags=0: _run_regex(regex.fullmatch, pattern, string, flags=flags),
    findall=lambda pattern, string, flags=0: _run_regex(regex.findall, pattern, string, flags=flags),
    split=lambda pattern, string, maxsplit=0, flags=0: _run_regex(regex.split, pattern, string,
                                                                   maxsplit=maxsplit, flags=flags),
    sub=_sub,
    IGNORECASE=regex.IGNORECASE,
)
JSON = SimpleNamespace(loads=json_loads, dumps=json_dumps)
