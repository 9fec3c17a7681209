"""The results page: ``docs/benchmarks.md`` and its plot, written from one run."""

from __future__ import annotations

import datetime
import math
import os
from typing import TYPE_CHECKING

from benchmarks.suite import footnotes, table
from peers.casd import REPO

if TYPE_CHECKING:
    from benchmarks.suite import Run

PLOT = "benchmarks.png"


def _markdown(lines: list[list[str]]) -> list[str]:
    header, *body = lines
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in body]
    return out


def _plot(runs: list[Run]) -> None:
    """Bars of casvfs / reference (log scale) for the import and FUSE cases."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels: list[str] = []
    values: list[float] = []
    for run in runs:
        for row in run.rows:
            if row.casvfs or row.missing or not row.samples or row.memory:
                continue
            if not (row.group.startswith("import") or row.group.startswith("FUSE")):
                continue
            ours = next((r for r in run.rows if r.group == row.group and r.casvfs and r.samples), None)
            if ours is None or row.median <= 0:
                continue
            labels.append(f"{run.name}: {row.group} vs {row.name}")
            values.append(ours.median / row.median)
    figure, axes = plt.subplots(figsize=(10, 0.35 * len(labels) + 1.5))
    axes.barh(range(len(values)), values, color=["tab:green" if v <= 1 else "tab:red" for v in values])
    axes.set_yticks(range(len(labels)), labels, fontsize=7)
    axes.invert_yaxis()
    axes.set_xscale("log")
    axes.axvline(1.0, color="black", linewidth=0.8)
    axes.set_xlabel("casvfs time / reference time (median; < 1: casvfs faster)")
    upper = max(values, default=1.0)
    axes.set_xlim(
        min(min(values, default=1.0), 1.0) / 1.5, max(upper, 1.0) * 1.5 if math.isfinite(upper) else 10
    )
    figure.tight_layout()
    # tight_layout alone still clipped the longest label: size the image to what is drawn
    figure.savefig(REPO / "docs" / PLOT, dpi=110, bbox_inches="tight", pad_inches=0.1)
    plt.close(figure)


def write_report(runs: list[Run], machine: str, command: str) -> None:
    """Write ``docs/benchmarks.md`` (and the plot) from *runs*."""
    _plot(runs)
    lines = [
        "# Benchmark results",
        "",
        "Written by the benchmark suite from one run; re-run it to refresh this page:",
        "",
        "```sh",
        command,
        "```",
        "",
        f"- Machine: {machine}",
        f"- Run: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        "- Medians over the repeats after one warm-up run; *casvfs / ref* is casvfs's median over the"
        " reference's (below 1: casvfs is faster).",
        "- *peak RSS MiB* is the measured process's peak resident memory (a pipeline's: its largest"
        " process's); the numbered notes under each table say where it covers something else or"
        " cannot be measured.",
        # what suite.py and mounts.py do: neither drops the page cache anywhere
        "- No case drops the page cache: files are read from whatever it holds after the warm-up run"
        " and the cases before (each tree has been read at least once by then). *cold* names the"
        " destination or the mount, not the page cache. *import host tree -> CAS (cold)* starts every"
        " sample with an empty store, output directory, git repository, buildbox-casd cache or"
        " BuildStream cache. *FUSE: tar | cat (cold)* is the first tar through a freshly started"
        " server and mount (which has served only the first read and a find): nothing of the tree's"
        " contents is cached by that server or by the kernel for that mount yet, while the server's"
        " own store is read through the page cache as it is; *(warm)* is the second tar through the"
        " same mount. For *native* they are simply a round's first and second tar."
        " (`python -m benchmarks.remote`, on the remote CAS page, does drop the page cache before"
        " every case when run as root.)",
        "",
        f"![casvfs / reference]({PLOT})",
        "",
    ]
    for run in runs:
        # the tree's name only: the cache directory is this machine's business
        lines += [f"## {run.name}", "", f"`{os.path.basename(run.tree)}`: {'; '.join(run.notes)}", ""]
        lines += [*_markdown(table(run.rows)), ""]
        notes = footnotes(run.rows)
        if notes:
            lines += ["Peak RSS notes:", "", *[f"- {note}" for note in notes], ""]
    (REPO / "docs" / "benchmarks.md").write_text("\n".join(lines))
