"""The results page: ``docs/benchmarks.md`` and its plot, written from one run."""

from __future__ import annotations

import datetime
import math
import os
from typing import TYPE_CHECKING

from benchmarks.suite import table
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
    figure.savefig(REPO / "docs" / PLOT, dpi=110)
    plt.close(figure)


def write_report(runs: list[Run], machine: str, command: str) -> None:
    """Write ``docs/benchmarks.md`` (and the plot) from *runs*."""
    _plot(runs)
    lines = [
        "# Benchmark results",
        "",
        "Written by the benchmark suite from one run; re-run it to refresh this page:",
        "",
        f"    {command}",
        "",
        f"- Machine: {machine}",
        f"- Run: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        "- Medians over the repeats after one warm-up run; *casvfs / ref* is casvfs's median over the"
        " reference's (below 1: casvfs is faster). The page cache is warm for every case.",
        "",
        f"![casvfs / reference]({PLOT})",
        "",
    ]
    for run in runs:
        # the tree's name only: the cache directory is this machine's business
        lines += [f"## {run.name}", "", f"`{os.path.basename(run.tree)}`: {'; '.join(run.notes)}", ""]
        lines += [*_markdown(table(run.rows)), ""]
    (REPO / "docs" / "benchmarks.md").write_text("\n".join(lines))
