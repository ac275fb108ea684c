# SPDX-License-Identifier: Apache-2.0
"""Runner-side helpers: where the venvs are, how to call a worker, where the vectors live."""

import json
import os
import pathlib
import subprocess

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
WORKERS = HERE / "workers"
VECTORS = REPO / "Tests" / "VaultCoreTests" / "Vectors"
VENVS = pathlib.Path(os.environ.get("INTEROP_VENVS", REPO / ".venv-interop"))


class WorkerError(RuntimeError):
    pass


def venv_python(lib):
    python = VENVS / lib / "bin" / "python"
    if not python.exists():
        raise WorkerError(f"no virtualenv for {lib} at {python}: run scripts/interop.sh --setup-only")
    return python


def call_worker(lib, request, timeout=600):
    """Run one worker request in ``lib``'s venv; return the decoded JSON response."""
    script = WORKERS / ("telethon_worker.py" if lib.startswith("telethon") else "pyrogram_worker.py")
    request = dict(request, lib=lib)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    proc = subprocess.run(
        [str(venv_python(lib)), str(script)], input=json.dumps(request), capture_output=True,
        text=True, timeout=timeout, env=env, cwd=str(HERE),
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        raise WorkerError(f"{lib} worker exited {proc.returncode}: {proc.stderr[-2000:]}")
    response = json.loads(lines[-1])
    if "fatal" in response:
        raise WorkerError(f"{lib} worker failed: {response['fatal']}\n{response.get('traceback', '')}")
    return response


def load(lib, items, scratch):
    """Batch ``load``: one subprocess per library for any number of strings/files."""
    if not items:
        return {}
    response = call_worker(lib, {"op": "load", "items": items, "dir": str(scratch)})
    return {r["key"]: r for r in response["results"]}


def vector_json(name):
    with open(VECTORS / name, encoding="utf-8") as fh:
        return json.load(fh)


JOBS = int(os.environ.get("INTEROP_JOBS", "3"))


def load_all(libs, items, scratch):
    """``load`` in every library, a few worker processes at a time: ``{lib: {key: result}}``."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=JOBS) as pool:
        futures = {lib: pool.submit(load, lib, items, pathlib.Path(scratch) / lib) for lib in libs}
        return {lib: f.result() for lib, f in futures.items()}
