"""The service's browsing pages: server-rendered HTML (Jinja2, no JavaScript) over the
same queries as the JSON API, each page also as JSON and CSV. See `docs/web.md`.

Layout: `pages.py` (the routes and what each page shows), `params.py` (their query
parameters), `cells.py` (how a value looks), `templates/` and `static/web.css`, found
next to this package wherever it is imported from.
"""

from examples.service.web.pages import router

__all__ = ["router"]
