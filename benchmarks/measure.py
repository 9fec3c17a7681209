"""Timing and memory of one run of a command, and the statistics over runs."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Sample:
    """One run: seconds, and the peak RSS of the measured process (MiB) where known."""

    seconds: float
    rss_mib: float | None = None


@dataclass
class Row:
    """One implementation of one case: its samples, or why it has none."""

    group: str
    name: str
    casvfs: bool
    samples: list[Sample] = field(default_factory=list)
    missing: str | None = None
    memory: bool = False
    """The case measures peak RSS, not time: :attr:`median` is MiB."""
    rss_note: str | None = None
    """What the peak RSS covers, or why there is none (a footnote to the table)."""

    def _rss_values(self) -> list[float]:
        return [sample.rss_mib for sample in self.samples if sample.rss_mib is not None]

    def values(self) -> list[float]:
        """Seconds per sample, or MiB for a memory case."""
        return self._rss_values() if self.memory else [sample.seconds for sample in self.samples]

    @property
    def median(self) -> float:
        """Median seconds (MiB for a memory case)."""
        return statistics.median(self.values())

    @property
    def peak_rss(self) -> float | None:
        """Median peak RSS in MiB, where measured."""
        values = self._rss_values()
        return statistics.median(values) if values else None


class CommandFailed(RuntimeError):
    """A benchmarked command exited non-zero."""


def run_process(command: Sequence[str], *, cwd: str | None = None) -> tuple[Sample, str]:
    """Run *command*; its wall time (or the ``seconds`` it reports as JSON on its
    last stdout line), its peak RSS, and its stdout."""
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen(list(command), cwd=cwd, stdout=subprocess.PIPE, stderr=errors)
        assert process.stdout is not None
        output = process.stdout.read().decode(errors="replace")
        _pid, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            errors.seek(0)
            raise CommandFailed(
                f"{' '.join(command)}: exit {process.returncode}: {errors.read().decode()[-2000:]}"
            )
    lines = output.strip().splitlines()
    if lines and lines[-1].startswith("{"):
        reported = json.loads(lines[-1]).get("seconds")
        if reported is not None:
            elapsed = float(reported)
    return Sample(elapsed, usage.ru_maxrss / 1024), output


def child_pid(name: str) -> int | None:
    """The pid of this process's one live child whose command is *name*, if exactly
    one is (a server started by a helper that does not hand out its pid)."""
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                text = stat.read()
        except OSError:
            continue  # gone meanwhile
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        comm = text[text.index("(") + 1 : text.rindex(")")]
        ppid = int(text[text.rindex(")") + 1 :].split()[1])
        if comm == name[:15] and ppid == os.getpid():
            found.append(int(entry))
    return found[0] if len(found) == 1 else None


def reset_peak_rss(pid: int) -> bool:
    """Reset a live process's peak RSS (VmHWM) to its current RSS, so the next
    reading covers only what comes after; False where the kernel does not allow it."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as control:
            control.write("5\n")
    except OSError:
        return False
    return True


def shell(command: str, cwd: str) -> Sample:
    """Run a shell pipeline (``pipefail``); wall time and the largest process's peak RSS."""
    sample, _ = run_process(["bash", "-o", "pipefail", "-c", command], cwd=cwd)
    return sample


def repeat(
    row: Row,
    times: int,
    run: Callable[[], Sample],
    *,
    setup: Callable[[], None] | None = None,
    warmup: bool = True,
) -> Row:
    """Fill *row* with *times* samples of *run* (after *setup*, untimed), after one
    untimed warm-up run."""
    for attempt in range(times + (1 if warmup else 0)):
        if setup is not None:
            setup()
        sample = run()
        if warmup and attempt == 0:
            continue
        row.samples.append(sample)
    print(f"  {row.group} / {row.name}: {row.median:.3f}", file=sys.stderr)
    return row
