# SPDX-License-Identifier: Apache-2.0
"""`session-vault run`, the real binary, against a lease server on loopback.

The tests parametrised with `lease_server` run against the fake (fake_vault.py) and, once the
vault has the lease routes, against the real vault; those with `fake_server` read the fake's
request log (renewal cadence, release) or steer it in ways only the fake can.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import free_port

from .harness import CHILD, Run, process_alive, wait_until, zombie_children

TTL = 5  # the smallest TTL: renewals every 5/3 s, the wrapper's margin 1 s


def run(server, tmp_path: Path, name: str = "w", **kwargs) -> Run:
    flags = list(kwargs.pop("flags", ()))
    return Run(tmp_path / name, address=kwargs.pop("address", server.address),
               token=kwargs.pop("token", server.token), session=kwargs.pop("session", server.session),
               flags=flags, **kwargs)


# --------------------------------------------------------------------------
# The child's environment, exit status, release
# --------------------------------------------------------------------------

@pytest.mark.parametrize("fmt,env_var", [("pyrogram", None), ("telethon", "BOT_SESSION")])
def test_child_gets_the_string_in_one_variable_and_no_vault_settings(lease_server, tmp_path, fmt, env_var):
    flags = ["--format", fmt] + (["--env-var", env_var] if env_var else [])
    w = run(lease_server, tmp_path, mode="exit", seconds=0.2, exit_code=3, flags=flags,
            env={"SESSION_VAULT_STORAGE": "memory", "TG_SESSION": "stale"})
    assert w.wait() == 3, w.stderr()
    seen = w.started()
    env = seen["env"]
    name = env_var or "TG_SESSION"
    assert env[name] == lease_server.strings[fmt]
    assert [k for k in env if k.startswith("SESSION_VAULT_")] == []
    assert env["KEEP_ME"] == "kept"
    # The string is in that one variable and nowhere else: not in another variable, not in argv.
    assert [k for k, v in env.items() if lease_server.strings[fmt] in v] == [name]
    assert lease_server.strings[fmt] not in w.stderr() and lease_server.token not in w.stderr()
    # Released on exit: the next acquisition is immediate.
    assert lease_server.holder() is None


def test_token_file_and_default_holder(fake_server, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(fake_server.token + "\n")
    w = Run(tmp_path / "w", address=fake_server.address, token=None, session=fake_server.session,
            mode="exit", seconds=5, env={"SESSION_VAULT_TOKEN_FILE": str(token_file)})
    w.started()
    holder = fake_server.holder()
    assert holder is not None and holder.endswith(f"pid {w.pid}"), holder
    assert w.wait() == 0, w.stderr()
    deletes = fake_server.fake.recorded("DELETE")
    assert len(deletes) == 1 and deletes[0].status == 204 and deletes[0].lease_header


def test_exit_status_of_a_child_killed_by_a_signal_is_128_plus_it(lease_server, tmp_path):
    w = run(lease_server, tmp_path, mode="default", seconds=30)
    child = w.started()["pid"]
    os.kill(child, signal.SIGKILL)
    assert w.wait() == 128 + signal.SIGKILL, w.stderr()
    assert lease_server.holder() is None


# --------------------------------------------------------------------------
# Failures at start: 69, 75, 78, 77, 66, 127
# --------------------------------------------------------------------------

def test_no_token_is_78_and_no_address_is_78(fake_server, tmp_path):
    w = Run(tmp_path / "a", address=fake_server.address, token=None, session="bot")
    assert w.wait() == 78
    assert "SESSION_VAULT_TOKEN" in w.stderr()
    w = Run(tmp_path / "b", address=None, token=fake_server.token, session="bot")
    assert w.wait() == 78
    assert "SESSION_VAULT_ADDR" in w.stderr()
    w = Run(tmp_path / "c", address=None, token=None, session="bot",
            env={"SESSION_VAULT_ADDR": fake_server.address, "SESSION_VAULT_TOKEN_FILE": str(tmp_path / "missing")})
    assert w.wait() == 78
    assert not (tmp_path / "c" / "env.json").exists()
    assert fake_server.fake.recorded() == []


def test_unreachable_vault_at_start_is_69(tmp_path):
    port = free_port()  # nothing listens there
    w = Run(tmp_path / "w", address=f"http://127.0.0.1:{port}", token="svt_x", session="bot")
    assert w.wait() == 69
    assert "cannot reach the vault" in w.stderr()
    assert not (tmp_path / "w" / "env.json").exists()


def test_held_by_another_after_wait_is_75_naming_the_holder(lease_server, tmp_path):
    first = run(lease_server, tmp_path, "first", mode="term", seconds=30, flags=["--holder", "first-host pid 1"])
    first.started()
    start = time.monotonic()
    second = run(lease_server, tmp_path, "second", flags=["--wait", "1"])
    assert second.wait() == 75, second.stderr()
    assert 0.9 <= time.monotonic() - start < 10
    assert "first-host pid 1" in second.stderr()
    assert not (tmp_path / "second" / "env.json").exists()
    first.signal(signal.SIGTERM)
    assert first.wait() == 0


def test_refused_token_unknown_session_and_missing_command(fake_server, tmp_path):
    w = Run(tmp_path / "a", address=fake_server.address, token="svt_wrong", session="bot")
    assert w.wait() == 77
    w = Run(tmp_path / "b", address=fake_server.address, token=fake_server.token, session="nosuch")
    assert w.wait() == 66
    w = Run(tmp_path / "c", address=fake_server.address, token=fake_server.token, session="bot",
            command=["no-such-command-for-the-wrapper-test"])
    assert w.wait() == 127
    assert "command not found" in w.stderr()
    # The lease taken for it was released.
    assert fake_server.holder() is None
    assert [r.status for r in fake_server.fake.recorded("DELETE")] == [204]


def test_bad_flags_are_64_before_any_request(fake_server, tmp_path):
    for flags in (["--ttl", "4"], ["--ttl", "301"], ["--wait", "61"], ["--env-var", "1BAD"],
                  ["--holder", "x" * 257], ["--format", "pyrogram-file"]):
        w = run(fake_server, tmp_path, "w" + str(len(flags[1])), flags=flags)
        assert w.wait() == 64, (flags, w.stderr())
    w = Run(tmp_path / "nocmd", address=fake_server.address, token=fake_server.token, session="bot", command=[])
    assert w.wait() == 64
    assert fake_server.fake.recorded() == []


# --------------------------------------------------------------------------
# Signals
# --------------------------------------------------------------------------

def test_sighup_sigint_sigterm_are_forwarded(lease_server, tmp_path):
    w = run(lease_server, tmp_path, mode="term", seconds=30, exit_code=7)
    w.started()
    for signo in (signal.SIGHUP, signal.SIGINT):
        before = len(w.signals())
        w.signal(signo)
        assert wait_until(lambda: len(w.signals()) > before, 10), w.stderr()
        assert w.signals()[-1][0] == signo
    assert w.proc.poll() is None
    w.signal(signal.SIGTERM)
    assert w.wait() == 7, w.stderr()
    assert [s for s, _ in w.signals()] == [signal.SIGHUP, signal.SIGINT, signal.SIGTERM]
    assert lease_server.holder() is None


def test_sigterm_while_waiting_for_the_lease_exits_without_starting(fake_server, tmp_path):
    first = run(fake_server, tmp_path, "first", mode="term", seconds=30)
    first.started()
    second = run(fake_server, tmp_path, "second", flags=["--wait", "30"])
    assert wait_until(lambda: len(fake_server.fake.recorded("POST")) == 2, 10), second.stderr()
    second.signal(signal.SIGTERM)
    assert second.wait(timeout=5) == 128 + signal.SIGTERM
    assert not (tmp_path / "second" / "env.json").exists()
    first.signal(signal.SIGTERM)
    assert first.wait() == 0


# --------------------------------------------------------------------------
# Losing the lease
# --------------------------------------------------------------------------

def test_lease_lost_sends_sigterm_then_exits_75(lease_server, tmp_path):
    w = run(lease_server, tmp_path, mode="term", seconds=60, exit_code=0, flags=["--ttl", str(TTL)])
    w.started()
    lost_at = time.monotonic()
    lease_server.force_loss()
    assert w.wait(timeout=TTL + 5) == 75, w.stderr()
    signals = w.signals()
    assert [s for s, _ in signals] == [signal.SIGTERM]
    # The next renewal (at most TTL/3 later) told the wrapper.
    assert signals[0][1] - lost_at < TTL / 3 + 1.5
    assert "lost" in w.stderr()


def test_child_that_ignores_sigterm_gets_sigkill_after_kill_after(lease_server, tmp_path):
    w = run(lease_server, tmp_path, mode="stubborn", seconds=60, flags=["--ttl", str(TTL), "--kill-after", "1"])
    child = w.started()["pid"]
    lease_server.force_loss()
    assert wait_until(lambda: w.signals() != [], TTL), w.stderr()
    term_at = w.signals()[0][1]
    assert w.wait(timeout=10) == 75, w.stderr()
    killed_after = time.monotonic() - term_at
    assert not process_alive(child)
    assert 0.9 <= killed_after < 3, killed_after
    assert "SIGKILL" in w.stderr()


# --------------------------------------------------------------------------
# Renewal, an unreachable vault
# --------------------------------------------------------------------------

def test_renews_every_third_of_the_ttl(fake_server, tmp_path):
    ttl = 6
    w = run(fake_server, tmp_path, mode="exit", seconds=7.5, flags=["--ttl", str(ttl)])
    w.started()
    assert w.wait(timeout=20) == 0, w.stderr()
    post = fake_server.fake.recorded("POST")[0].at
    puts = [r.at for r in fake_server.fake.recorded("PUT")]
    assert all(r.status == 200 for r in fake_server.fake.recorded("PUT"))
    gaps = [b - a for a, b in zip([post] + puts, puts)]
    assert len(puts) >= 3, gaps
    assert all(ttl / 3 - 0.3 <= g <= ttl / 3 + 0.6 for g in gaps), gaps


def test_failed_renewals_are_retried_every_second_then_the_child_is_stopped_before_expiry(fake_server, tmp_path):
    w = run(fake_server, tmp_path, mode="term", seconds=60, flags=["--ttl", str(TTL)])
    w.started()
    fake = fake_server.fake
    assert wait_until(lambda: len(fake.recorded("PUT")) >= 1, TTL), w.stderr()
    # Answer nothing (connections cut) but keep listening, so each attempt is recorded.
    with fake.cond:
        fake.down = True
    assert w.wait(timeout=TTL + 5) == 75, w.stderr()
    puts = fake.recorded("PUT")
    last_ok = max(r.at for r in puts if r.status == 200)
    failed = [r.at for r in puts if r.at > last_ok]
    assert len(failed) >= 2, (last_ok, failed)
    assert all(b - a <= 1.3 for a, b in zip(failed, failed[1:])), failed
    term_at = w.signals()[0][1]
    # Stopped before the fake's lease expired (last successful renewal + TTL).
    assert term_at < last_ok + TTL, (term_at - last_ok)


def test_vault_down_then_back_within_the_ttl_keeps_the_lease(lease_server, tmp_path):
    ttl = 15  # renewals every 5 s, margin 2 s: the wrapper holds on for at least 8 s of outage
    w = run(lease_server, tmp_path, mode="term", seconds=60, exit_code=5, flags=["--ttl", str(ttl)])
    w.started()
    holder = lease_server.holder()
    assert holder is not None
    lease_server.go_down()
    assert wait_until(lambda: "renewal failed" in w.stderr(), ttl / 3 + 1), w.stderr()
    time.sleep(1)  # a longer outage than one retry
    lease_server.come_back()
    assert wait_until(lambda: "renewed the lease again" in w.stderr(), ttl), w.stderr()
    assert w.proc.poll() is None, w.stderr()
    assert w.signals() == []
    assert lease_server.holder() == holder
    w.signal(signal.SIGTERM)
    assert w.wait() == 5


def test_vault_down_past_the_ttl_stops_the_child_before_the_lease_could_move(lease_server, tmp_path):
    w = run(lease_server, tmp_path, mode="term", seconds=60, flags=["--ttl", str(TTL)])
    w.started()
    down_at = time.monotonic()
    lease_server.go_down()
    assert w.wait(timeout=TTL + 5) == 75, w.stderr()
    # The last renewal was before down_at, so the lease expired by down_at + TTL at the latest,
    # and nobody could have it before that plus the lock-delay.
    stopped = [t for kind, t in w.intervals() if kind == "stop"][0]
    assert stopped < down_at + TTL
    lease_server.come_back()


# --------------------------------------------------------------------------
# PID 1 duties: reaping orphans, signals as PID 1
# --------------------------------------------------------------------------

def test_orphaned_grandchildren_are_reaped(fake_server, tmp_path):
    w = run(fake_server, tmp_path, mode="orphan", seconds=30)
    w.started()
    grandchild_file = tmp_path / "w" / "grandchild"
    assert wait_until(grandchild_file.exists, 10)
    grandchild = int(grandchild_file.read_text())
    # Re-parented to the wrapper (a subreaper), then reaped when it exits.
    assert wait_until(lambda: not Path(f"/proc/{grandchild}").exists(), 10), zombie_children(w.pid)
    assert zombie_children(w.pid) == []
    w.signal(signal.SIGTERM)
    assert w.wait() == 0


def _unshare_pid_namespace_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
    return probe.returncode == 0


@pytest.mark.skipif(not _unshare_pid_namespace_works(), reason="needs unshare --pid (root or user namespaces)")
def test_as_pid_1_it_forwards_signals_and_reaps(fake_server, tmp_path):
    w = run(fake_server, tmp_path, mode="orphan", seconds=30, exit_code=9,
            prefix=["unshare", "--pid", "--fork", "--mount-proc"])
    seen = w.started()
    assert seen["ppid"] == 1  # the wrapper is PID 1 in the new namespace
    grandchild_file = tmp_path / "w" / "grandchild"
    assert wait_until(grandchild_file.exists, 10)
    # The wrapper's pid outside the namespace: the child of `unshare`.
    children = Path(f"/proc/{w.pid}/task/{w.pid}/children").read_text().split()
    assert len(children) == 1
    wrapper = int(children[0])
    assert wait_until(lambda: zombie_children(wrapper) == [] and len(_children_of(wrapper)) == 1, 10), \
        zombie_children(wrapper)
    os.kill(wrapper, signal.SIGTERM)
    assert w.wait() == 9, w.stderr()
    assert [s for s, _ in w.signals()] == [signal.SIGTERM]


def _children_of(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(p) for p in (task / "children").read_text().split()]
    return out


# --------------------------------------------------------------------------
# The proofs (fake now; the real vault once it has the lease routes)
# --------------------------------------------------------------------------

def _no_overlap(intervals: list[tuple[float, float]]) -> None:
    ordered = sorted(intervals)
    for (_, end), (start, _) in zip(ordered, ordered[1:]):
        assert end <= start, f"child intervals overlap: {ordered}"


def _interval(w: Run) -> tuple[float, float]:
    marks = dict(w.intervals())
    return marks["start"], marks["stop"]


def test_two_wrappers_twenty_rounds_never_overlap(lease_server, tmp_path):
    intervals = []
    for round_ in range(20):
        pair = [run(lease_server, tmp_path, f"r{round_}-{i}", mode="exit", seconds=0.2,
                    flags=["--ttl", str(TTL), "--wait", "30", "--holder", f"wrapper {i}"]) for i in (0, 1)]
        for w in pair:
            assert w.wait(timeout=40) == 0, w.stderr()
        intervals += [_interval(w) for w in pair]
    assert len(intervals) == 40  # every round, each child ran (one after the other)
    _no_overlap(intervals)


def test_sigstopped_wrapper_stops_its_child_at_once_on_sigcont(lease_server, tmp_path):
    lock_delay = lease_server.lock_delay
    a = run(lease_server, tmp_path, "a", mode="term", seconds=120, flags=["--ttl", str(TTL), "--holder", "a"])
    a.started()
    b = run(lease_server, tmp_path, "b", mode="term", seconds=120, flags=["--ttl", str(TTL), "--wait", "60", "--holder", "b"])
    stopped_at = time.monotonic()
    a.signal(signal.SIGSTOP)
    pause = TTL + lock_delay / 2  # past the TTL, short of TTL + lock-delay
    time.sleep(pause)  # the pause itself is the thing under test
    assert not (tmp_path / "b" / "env.json").exists(), "b acquired during the lock-delay"
    a.signal(signal.SIGCONT)
    resumed = time.monotonic()
    assert a.wait(timeout=5) == 75, a.stderr()
    term_at = a.signals()[0][1]
    assert term_at - resumed < 1.0, "the stopped wrapper did not act at once on SIGCONT"
    b.started(timeout=30)
    b_start = _interval_start(b)
    # a's last renewal was at most TTL/3 before the stop: expiry >= stop + 2/3 TTL, plus the lock-delay.
    assert b_start >= stopped_at + TTL * 2 / 3 + lock_delay - 0.3
    a_stop = dict(a.intervals())["stop"]
    assert a_stop <= b_start
    b.signal(signal.SIGTERM)
    assert b.wait() == 0


def _interval_start(w: Run) -> float:
    return dict(w.intervals())["start"]


def test_a_lease_won_after_a_long_wait_is_kept(lease_server, tmp_path):
    """The TTL of a lease granted during a long poll is counted from a renewal, not from the
    poll's start (which lay further back than the TTL, so the lease looked lost at once)."""
    first = run(lease_server, tmp_path, "first", mode="exit", seconds=TTL + 1, flags=["--ttl", str(TTL)])
    first.started()
    second = run(lease_server, tmp_path, "second", mode="exit", seconds=TTL + 1, exit_code=4,
                 flags=["--ttl", str(TTL), "--wait", "30"])
    assert first.wait() == 0, first.stderr()
    assert second.wait(timeout=30) == 4, second.stderr()
    assert second.signals() == []
    _no_overlap([_interval(first), _interval(second)])
