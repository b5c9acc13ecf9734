"""Running one contender as a whole process and measuring it: wall time and peak RSS of its process tree.

psutil is not a dependency of the project, so the tree is walked through /proc directly: every
`interval` seconds the monitor collects the process and all its descendants (Beam's
multi_processing workers are children of the launching process) and sums their resident set
sizes. RSS counts shared pages once per process, so for a tree of forked workers the sum is an
upper bound of what the tree really holds; for single-process contenders it is exact.

A memory cap turns "this contender would take the machine down" into a result: when the tree's
RSS passes the cap, the whole process group is killed and the run is reported as killed at that
size. (`ulimit -v` is no use here: TensorFlow reserves far more address space than it touches.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RunResult", "run_measured", "tree_rss"]

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def _children(pid: int) -> list[int]:
    """Direct children of pid, from every thread's `children` file (each thread may have forked)."""
    found: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as handle:
                found.extend(int(child) for child in handle.read().split())
        except OSError:
            continue
    return found


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * _PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0  # the process ended between listing and reading


def tree_rss(root: int) -> tuple[int, int]:
    """Returns (summed RSS in bytes, number of processes) of root and all its descendants."""
    total, count, stack, seen = 0, 0, [root], set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        rss = _rss(pid)
        if rss:
            total += rss
            count += 1
        stack.extend(_children(pid))
    return total, count


@dataclass(frozen=True)
class RunResult:
    """What one measured process did."""

    command: list[str]
    returncode: int
    wall_seconds: float
    peak_rss_bytes: int
    max_processes: int
    killed_at_bytes: int | None  # set when the memory cap killed the tree
    timed_out: bool
    log: Path
    cpu_seconds: float = 0.0  # user + system time of the process and the children it waited for
    machine_busy_seconds: float = 0.0  # CPU time every process on the machine used meanwhile

    @property
    def others_cores(self) -> float:
        """Cores other work kept busy during the run, on average: how noisy the measurement was."""
        return max(0.0, self.machine_busy_seconds - self.cpu_seconds) / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.killed_at_bytes is None and not self.timed_out


def run_measured(
    command: list[str],
    log: Path,
    *,
    memory_cap_bytes: int | None = None,
    interval: float = 0.05,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> RunResult:
    """Runs command to completion (or to the cap / timeout), sampling its tree's RSS.

    The command gets a session of its own so that killing it reaches every worker it started and
    nothing else.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    peak, max_procs, killed, timed_out = 0, 0, None, False
    with open(log, "wb") as out:
        out.write(("$ " + " ".join(command) + "\n").encode())
        out.flush()
        busy_before = _machine_busy_seconds()
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        done = threading.Event()

        def sample() -> None:
            nonlocal peak, max_procs, killed, timed_out
            while not done.wait(interval):
                rss, procs = tree_rss(process.pid)
                peak, max_procs = max(peak, rss), max(max_procs, procs)
                if killed is not None or timed_out:
                    continue
                if memory_cap_bytes is not None and rss > memory_cap_bytes:
                    killed = rss
                    _kill_group(process.pid)
                elif timeout is not None and time.perf_counter() - start > timeout:
                    timed_out = True
                    _kill_group(process.pid)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            # wait4 rather than wait: its rusage covers the process and the children it reaped.
            _, status, usage = os.wait4(process.pid, 0)
            returncode = os.waitstatus_to_exitcode(status)
            process.returncode = returncode
        except BaseException:  # Ctrl-C on the harness must not leave a 12 GB job behind
            _kill_group(process.pid)
            raise
        finally:
            wall = time.perf_counter() - start
            busy = _machine_busy_seconds() - busy_before
            done.set()
            sampler.join()
        # Beam workers outliving their parent would otherwise keep running unobserved.
        _kill_group(process.pid)
    cpu = usage.ru_utime + usage.ru_stime
    return RunResult(command, returncode, wall, peak, max_procs, killed, timed_out, log, cpu, busy)


def _machine_busy_seconds() -> float:
    """Non-idle CPU time of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as handle:
        fields = [int(x) for x in handle.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _kill_group(pid: int) -> None:
    """Kills the session the measured command runs in (its own; see start_new_session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
