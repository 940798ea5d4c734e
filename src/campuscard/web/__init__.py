"""Server-rendered pages (Jinja2 + HTMX), one module per audience: web/student (phones),
web/merchant (the POS page), web/kiosk (touch kiosks), web/admin (the console).
See docs/architecture.md, "Web pages", for how to add a page."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from campuscard.web import core, errors


def install(app: FastAPI) -> None:
    """Static files and the page-only error handlers; routers are listed in campuscard/app.py."""
    app.mount("/static", StaticFiles(directory=core.STATIC_DIR), name="static")
    errors.install(app)
