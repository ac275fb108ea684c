# SPDX-License-Identifier: Apache-2.0
"""The command the run-wrapper tests start under `session-vault run`.

    child.py REPORT_DIR MODE [SECONDS] [EXIT]

On start it writes REPORT_DIR/env.json (its environment and pid, ppid) and appends
"start <monotonic>" to REPORT_DIR/intervals; it appends "stop <monotonic>" when it ends by itself
or by a handled signal. Every handled signal is appended to REPORT_DIR/signals as "<signo> <monotonic>".

MODE:
  exit      run SECONDS, then exit with EXIT
  term      like exit, but SIGTERM/SIGINT/SIGHUP are recorded; SIGTERM then ends it with EXIT
  default   like exit, with default signal dispositions (a SIGTERM kills it)
  stubborn  records and ignores SIGTERM (only SIGKILL ends it), runs SECONDS
  orphan    double-forks a grandchild that lives 0.5 s (its pid in REPORT_DIR/grandchild), then like term
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

report = Path(sys.argv[1])
mode = sys.argv[2]
seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 30.0
code = int(sys.argv[4]) if len(sys.argv) > 4 else 0


def append(name: str, line: str) -> None:
    with open(report / name, "a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def stop(status: int) -> None:
    append("intervals", f"stop {time.monotonic():.6f}")
    os._exit(status)


def on_signal(signo: int, _frame: object) -> None:
    append("signals", f"{signo} {time.monotonic():.6f}")
    if mode in ("term", "orphan") and signo == signal.SIGTERM:
        stop(code)


append("intervals", f"start {time.monotonic():.6f}")
if mode in ("term", "orphan"):
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
elif mode == "stubborn":
    signal.signal(signal.SIGTERM, on_signal)
(report / "env.json.tmp").write_text(json.dumps({"env": dict(os.environ), "pid": os.getpid(), "ppid": os.getppid()}))
os.replace(report / "env.json.tmp", report / "env.json")

if mode == "orphan":
    first = os.fork()
    if first == 0:
        second = os.fork()
        if second == 0:
            (report / "grandchild.tmp").write_text(str(os.getpid()))
            os.replace(report / "grandchild.tmp", report / "grandchild")
            time.sleep(0.5)
            os._exit(0)
        os._exit(0)
    os.waitpid(first, 0)

deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
stop(code)
