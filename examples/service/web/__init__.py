"""The service's browsing pages: server-rendered HTML (Jinja2, no JavaScript) over the
same queries as the JSON API, each page also as JSON and CSV. See `docs/web.md`.

Layout: `pages.py` (the routes and what each page shows), `params.py` (their query
parameters), `cells.py` (how a value looks), `forms.py` and `session.py` (the write
forms and who may send them), `templates/` and `static/web.css`, found
next to this package wherever it is imported from.
"""

from fastapi import APIRouter

from examples.service.settings import Settings
from examples.service.web import forms, pages

__all__ = ["router"]


def router(settings: Settings) -> APIRouter:
    """The pages and the write forms; the forms first, so that `/browse/_unlock` is not
    taken for a database's page."""
    combined = APIRouter(include_in_schema=False)
    combined.include_router(forms.router(settings))
    combined.include_router(pages.router(settings))
    return combined
