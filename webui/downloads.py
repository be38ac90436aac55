"""How stored files leave the server, for the API and the pages alike: always as an attachment with a
safe type, never sniffed or rendered, never cached by shared caches."""
from __future__ import annotations

from flask import send_file

from engine.evidence_files import served_type


def evidence_attachment(row, path):
    response = send_file(path, mimetype=served_type(row.content_type), as_attachment=True,
                         download_name=row.filename or "evidence", conditional=False, etag=row.sha256)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "sandbox"
    response.headers["Cache-Control"] = "private, no-store"
    return response
