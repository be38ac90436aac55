"""Paging headers for list endpoints whose body is a bare JSON array (the task inbox).

`X-Total-Count` says how many items there are on every page together; `Link` (RFC 8288) points to
the first, previous, next and last pages with the request's own query string, so a client follows
`rel="next"` until there is none.
"""
from __future__ import annotations

from urllib.parse import urlencode

from flask import request


def paging_headers(total: int, page: int, per_page: int) -> dict[str, str]:
    last = max((total + per_page - 1) // per_page, 1)
    pages = {"first": 1, "last": last}
    if page > 1:
        pages["prev"] = min(page - 1, last)
    if page < last:
        pages["next"] = page + 1
    links = [f'<{_url(number, per_page)}>; rel="{rel}"' for rel, number in pages.items()]
    return {"X-Total-Count": str(total), "Link": ", ".join(links)}


def _url(page: int, per_page: int) -> str:
    args = [(k, v) for k, v in request.args.items(multi=True) if k not in ("page", "per_page")]
    return f"{request.base_url}?{urlencode([*args, ('page', page), ('per_page', per_page)])}"
