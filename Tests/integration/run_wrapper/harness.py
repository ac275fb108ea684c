# SPDX-License-Identifier: Apache-2.0
"""Running the real `session-vault run` against a lease server, and reading what its child saw.

`Run` starts `session-vault run ... -- python child.py REPORT_DIR MODE ...` with only the
variables a test gives (plus PATH and HOME), and reads the child's reports (child.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from conftest import binary_path

CHILD = Path(__file__).with_name("child.py")



def wait_until(predicate, timeout: float, interval: float = 0.02) -> bool:
    """Polls an observable condition, bounded by `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


class Run:
    """One `session-vault run` process and its child's report folder."""

    def __init__(self, report: Path, *, address: str | None, token: str | None, session: str,
                 mode: str = "exit", seconds: float = 30.0, exit_code: int = 0,
                 flags: Sequence[str] = (), env: Mapping[str, str] | None = None,
                 command: Sequence[str] | None = None, prefix: Sequence[str] = ()):
        self.report = report
        report.mkdir(parents=True, exist_ok=True)
        environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(report),
                       "KEEP_ME": "kept"}
        if address is not None:
            environment["SESSION_VAULT_ADDR"] = address
        if token is not None:
            environment["SESSION_VAULT_TOKEN"] = token
        environment.update(env or {})
        if command is None:
            command = [sys.executable, str(CHILD), str(report), mode, str(seconds), str(exit_code)]
        argv = [*prefix, str(binary_path()), "run", "--session", session, *flags, "--", *command]
        self.stderr_path = report / "wrapper.stderr"
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(argv, env=environment, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)

    # -- the wrapper -------------------------------------------------------------
    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"wrapper still running after {timeout} s\n{self.stderr()}") from None

    def signal(self, signo: int) -> None:
        self.proc.send_signal(signo)

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    # -- the child ---------------------------------------------------------------
    def started(self, timeout: float = 20.0) -> dict[str, Any]:
        """The child's env.json once it exists (the child is running)."""
        path = self.report / "env.json"
        assert wait_until(path.exists, timeout), f"child did not start\n{self.stderr()}"
        return json.loads(path.read_text())

    def signals(self) -> list[tuple[int, float]]:
        path = self.report / "signals"
        if not path.exists():
            return []
        return [(int(a), float(b)) for a, b in (line.split() for line in path.read_text().splitlines())]

    def intervals(self) -> list[tuple[str, float]]:
        path = self.report / "intervals"
        if not path.exists():
            return []
        return [(a, float(b)) for a, b in (line.split() for line in path.read_text().splitlines())]


def process_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def zombie_children(pid: int) -> list[int]:
    """Zombie processes whose parent is `pid`."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if fields[0] == "Z" and int(fields[1]) == pid:
            out.append(int(entry.name))
    return out
