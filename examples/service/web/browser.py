"""A real browser for the pages' tests and screenshots: the system's Chromium driven by
Playwright for Python (no browser download: Playwright's own builds are not used).

`find_chromium()` says where the browser is (None if it is not installed: `apt-get
install chromium` on Debian); `chromium_context(user_data_dir)` starts it headless with a
fresh profile and closes everything it opened when the block ends.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext

__all__ = ["CHROMIUM_ARGS", "chromium_context", "find_chromium"]

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Quiet and self-contained: no sandbox (containers, root), no network of its own."""


def find_chromium() -> str | None:
    """The Chromium executable (`IORESULT_CHROMIUM`, else `chromium` on the PATH), or
    None if there is none or Playwright is not installed."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return None
    configured = os.environ.get("IORESULT_CHROMIUM")
    if configured:
        return configured if Path(configured).exists() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def chromium_context(
    user_data_dir: Path, *, width: int = 1280, height: int = 900, scale: float = 1
) -> Iterator[BrowserContext]:
    """A headless Chromium context with a fresh profile in `user_data_dir`, its viewport
    `width` x `height` CSS pixels. Raises `RuntimeError` if there is no Chromium."""
    from playwright.sync_api import sync_playwright

    executable = find_chromium()
    if executable is None:
        raise RuntimeError(
            "no Chromium found: apt-get install chromium (and pip install playwright)"
        )
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(user_data_dir),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": width, "height": height},
            device_scale_factor=scale,
        )
        try:
            yield context
        finally:
            context.close()
