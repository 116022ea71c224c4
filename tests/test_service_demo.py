"""`make demo`'s startup path: the service module, run as `make demo` runs it (with a tiny
sample and an ephemeral port), creates the sample, says where it listens, and serves."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def test_demo_starts_serves_and_stops(tmp_path: Path) -> None:
    env = {**os.environ, "IORESULT_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "examples.service", "--port", "0", "--rows", "300"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    found = threading.Event()
    url: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            match = re.search(r"API: (http://127\.0\.0\.1:\d+)/databases  Docs: \1/docs", line)
            if match:
                url.append(match.group(1))
                found.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert found.wait(60), "".join(lines)
        r = httpx.get(f"{url[0]}/databases", timeout=10)
        assert r.status_code == 200
        assert [d["name"] for d in r.json()] == ["sample"]
        count = httpx.get(f"{url[0]}/databases/sample/tables/books/count", timeout=10)
        assert count.json()["count"] == 300
        assert (tmp_path / "data" / "sample.db").exists()
        assert any("creating the sample database" in line for line in lines)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        reader.join(10)
        assert proc.stdout is not None
        proc.stdout.close()
    assert proc.returncode == 0, "".join(lines)
    assert any("Application shutdown complete" in line for line in lines)


def test_demo_rejects_bad_settings(tmp_path: Path) -> None:
    env = {**os.environ, "IORESULT_DATA_DIR": str(tmp_path), "IORESULT_PORT": "http"}
    proc = subprocess.run(
        [sys.executable, "-m", "examples.service"],
        check=False,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "IORESULT_PORT must be an integer, got 'http'" in proc.stderr


def test_makefile_demo_runs_the_service() -> None:
    makefile = (REPO / "Makefile").read_text()
    demo = makefile.split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    assert "-m examples.service" in demo


_FREEZE_PROBE = """
import asyncio, gc, sys
import uvicorn
from examples.service.__main__ import _AnnouncingServer
from examples.service.app import create_app
from examples.service.settings import Settings

async def main() -> None:
    app = create_app(Settings.from_env(None, data_dir=sys.argv[1], sample_rows=50))
    server = _AnnouncingServer(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"), app
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    tracked = gc.get_objects()
    databases = app.state.databases
    # What startup made is frozen (the app, its open databases); what comes later is not.
    later = [[]]
    print(gc.get_freeze_count() > 0, any(o is app for o in tracked),
          any(o is databases for o in tracked), any(o is later for o in gc.get_objects()),
          gc.get_threshold()[0])
    server.should_exit = True
    await serving

asyncio.run(main())
"""


def test_the_server_freezes_what_startup_made(tmp_path: Path) -> None:
    """Objects alive once the service listens stay out of the garbage collector's full
    collections (`GcTunedServer`); objects made later are collected, in larger batches."""
    from examples.service.__main__ import YOUNG_COLLECTION_THRESHOLD

    out = subprocess.run(
        [sys.executable, "-c", _FREEZE_PROBE, str(tmp_path / "data")],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-5:] == [
        "True",
        "False",
        "False",
        "True",
        str(YOUNG_COLLECTION_THRESHOLD),
    ], out.stdout


def test_settings_take_the_data_directory_as_a_string(tmp_path: Path) -> None:
    from examples.service.settings import Settings

    settings = Settings.from_env({}, data_dir=str(tmp_path))
    assert settings.data_dir == tmp_path
    assert settings.sample_path == tmp_path / "sample.db"
    assert Settings(data_dir=str(tmp_path)).uploads_dir == tmp_path / "uploads"  # type: ignore[arg-type]
