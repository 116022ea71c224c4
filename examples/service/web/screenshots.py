"""Screenshots of the browsing pages, for the documentation (`make screenshots`).

Starts the demo (the application on uvicorn, on 127.0.0.1 and a free port) on a fresh
sample database in a temporary directory, opens the main pages in Chromium (through
Playwright, as the browser tests do) and saves PNGs under `docs/screenshots/`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from examples.service.app import create_app
from examples.service.sample import create_sample_database
from examples.service.settings import REPO_ROOT, Settings
from examples.service.testing import serve_in_thread
from examples.service.web.browser import chromium_context, find_chromium

__all__ = ["SHOTS", "main"]

SHOTS = [
    # (file, path, viewport width, viewport height, whole page)
    ("home.png", "/", 1280, 560, False),
    ("database.png", "/browse/sample", 1280, 760, False),
    ("table.png", "/browse/sample/books?_sort_desc=year&title__contains=loop", 1280, 900, False),
    ("row.png", "/browse/sample/reviews/row/[1,%22ana%22]", 1280, 520, False),
    ("table-phone.png", "/browse/sample/books?_col=title&_col=year&_col=price", 390, 844, False),
]
"""Each screenshot: its file, the page, the viewport and whether to capture all of it."""


def main(argv: list[str] | None = None) -> int:
    """Take every screenshot of `SHOTS`; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "screenshots")
    parser.add_argument("--rows", type=int, default=100_000, help="books in the sample")
    args = parser.parse_args(argv)
    if find_chromium() is None:
        print("no Chromium found: apt-get install chromium", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ioresult-shots-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        create_sample_database(data / "sample.db", rows=args.rows)
        settings = Settings.from_env({}, data_dir=data, create_sample=False)
        with (
            serve_in_thread(create_app(settings)) as server,
            chromium_context(Path(tmp) / "profile") as context,
        ):
            for name, path, width, height, full in SHOTS:
                page = context.new_page()
                try:
                    page.set_viewport_size({"width": width, "height": height})
                    response = page.goto(server.url + path)
                    if response is None or response.status != 200:
                        print(f"{path}: no page", file=sys.stderr)
                        return 1
                    if width > 600:
                        # Show the table page's forms, folded by default.
                        for panel in page.locator("details.panel").all():
                            panel.evaluate("e => e.open = true")
                    page.screenshot(path=str(args.out / name), full_page=full)
                finally:
                    page.close()
                print(args.out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
