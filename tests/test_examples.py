"""The code in the README and in docs/fastapi.md works as written, and the README's links
lead somewhere."""

from __future__ import annotations

import pathlib
import re
import sqlite3
import textwrap
from contextlib import closing

import httpx
import pytest
from asgi_lifespan import LifespanManager

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHECKED = ["README.md", "docs/fastapi.md", "docs/performance.md"]


def _blocks(name: str) -> list[str]:
    text = (ROOT / name).read_text()
    return [textwrap.dedent(b) for b in re.findall(r"```python\n(.*?)```", text, flags=re.S)]


def _block(name: str, marker: str) -> str:
    (found,) = [b for b in _blocks(name) if marker in b]
    return found


def test_readme_model_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    namespace: dict[str, object] = {}
    exec(compile(_block("README.md", "class ReadHeader"), "README.md", "exec"), namespace)
    assert capsys.readouterr().out.strip() == repr(b"SQLite format 3\x00")


@pytest.mark.parametrize("name", CHECKED)
def test_python_snippets_compile(name: str) -> None:
    """Every snippet is valid Python, fragments included (each is compiled as the body of
    an async function, so `await` and `return` are allowed)."""
    for number, block in enumerate(_blocks(name)):
        body = textwrap.indent(block, "    ")
        try:
            compile(f"async def snippet():\n{body}\n    pass\n", name, "exec")
        except SyntaxError as exc:  # pragma: no cover - the message is the point
            pytest.fail(f"{name}, python block {number + 1}: {exc}")


@pytest.mark.asyncio(loop_factories=["asyncio"])
async def test_readme_fastapi_recipe_serves(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's FastAPI recipe, as written, serves `data/sample.db` (relative to the
    working directory) and closes what it opened."""
    (tmp_path / "data").mkdir()
    with closing(sqlite3.connect(tmp_path / "data" / "sample.db")) as conn:
        conn.execute("CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT)")
        conn.executemany("INSERT INTO books VALUES (?, ?)", [(i, f"b{i}") for i in range(42)])
        conn.commit()
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "readme_recipe"}
    exec(compile(_block("README.md", "FastAPI(lifespan"), "README.md", "exec"), namespace)
    app = namespace["app"]
    async with (
        LifespanManager(app) as manager,  # type: ignore[arg-type]
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://test"
        ) as client,
    ):
        assert (await client.get("/books/count")).json() == 42
    assert app.state.db.closed  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "name", ["README.md", *(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))]
)
def test_links_lead_somewhere(name: str) -> None:
    """Every relative link names a file of the repository."""
    page = ROOT / name
    missing = []
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        path = target.split("#", 1)[0]
        if not path or re.match(r"[a-z]+:", path):
            continue
        if not (page.parent / path).exists():
            missing.append(target)
    assert missing == []
