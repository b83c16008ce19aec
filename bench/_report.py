"""Tables and the plot for ``bench/compare.py``'s summary rows."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.compare import Load, Run

MiB = 1024 * 1024
TARGET = 3.0  # the ratio the lead's optimisation work aims for


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "failed"
    return f"{value:,.0f} {unit}" if value >= 100 else f"{value:,.1f} {unit}"


def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value / MiB:.0f} MiB"


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _cell(side: dict[str, Any]) -> str:
    """The median, the range over the clean runs, and how many runs went wrong."""
    if side["median"] is None:
        return f"failed in {side['failed_runs']} of {side['runs']} runs"
    text = _number(side["median"], "").strip()
    if side["min"] is not None and side["min"] != side["max"]:
        low, high = (_number(side[end], "").strip() for end in ("min", "max"))
        text += f" ({low}\N{EN DASH}{high})"
    if side["failed_runs"]:
        text += f", {side['failed_runs']} of {side['runs']} runs failed"
    if side["runs_with_exit"]:
        text += f", crashed in {side['runs_with_exit']} of {side['runs']}"
    return text


def progress(done: int, total: int, run: Run, load: Load) -> str:
    outcome = "; ".join(run.problems) or _number(run.value, load.unit)
    errors = f", logged {'; '.join(run.server_errors)}" if run.server_errors else ""
    if run.exit_status is not None:
        errors += f", exited with status {run.exit_status}"
    return (f"[{done:>3}/{total}] {load.title:34} {run.server:9} {outcome:>14}  "
            f"peak RSS {_mib(run.peak_rss)}{errors}")


def _lines(rows: list[dict[str, Any]], idle: dict[str, float | None]) -> list[list[str]]:
    lines = [["Load", "trio_h2", "Hypercorn", "trio_h2 / Hypercorn",
              "peak RSS trio_h2", "peak RSS Hypercorn"]]
    for row in rows:
        ours, theirs = row["trio_h2"], row["Hypercorn"]
        lines.append([f"{row['title']}, {row['unit']}", _cell(ours), _cell(theirs),
                      _ratio(row["ratio"]), _mib(ours["peak_rss"]), _mib(theirs["peak_rss"])])
    lines.append(["idle, after start-up", "", "", "", _mib(idle["trio_h2"]),
                  _mib(idle["Hypercorn"])])
    return lines


def _notes(rows: list[dict[str, Any]]) -> list[str]:
    notes = []
    for row in rows:
        for name in ("trio_h2", "Hypercorn"):
            side = row[name]
            if side["problems"]:
                notes.append(f"{row['title']}: {name} failed {side['failed_runs']} of "
                             f"{side['runs']} runs: {'; '.join(side['problems'])}.")
            errors = "; ".join(side["errors"]) or "nothing logged"
            if side["runs_with_exit"]:
                statuses = ", ".join(str(status) for status in side["exits"])
                when = ("after the measured period, as h2load closed its connections"
                        if not side["problems"] else "during or after the run")
                notes.append(f"{row['title']}: {name} exited with status {statuses} {when}, "
                             f"in {side['runs_with_exit']} of {side['runs']} runs: {errors}.")
            elif side["runs_with_errors"]:
                notes.append(f"{row['title']}: {name} logged, in "
                             f"{side['runs_with_errors']} of {side['runs']} runs: "
                             f"{errors}.")
    return notes


def text_table(rows: list[dict[str, Any]], idle: dict[str, float | None],
               peak_connections_load: str) -> str:
    lines = _lines(rows, idle)
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = ["  ".join(cell.ljust(width) if i == 0 else cell.rjust(width)
                     for i, (cell, width) in enumerate(zip(line, widths, strict=True)))
           for line in lines]
    out.insert(1, "  ".join("-" * width for width in widths))
    peak = next((row for row in rows if row["load"] == peak_connections_load), None)
    if peak is not None:
        out.append(f"\npeak RSS at 100 connections: trio_h2 {_mib(peak['trio_h2']['peak_rss'])},"
                   f" Hypercorn {_mib(peak['Hypercorn']['peak_rss'])}")
    out += ["", *_notes(rows)] if _notes(rows) else []
    return "\n".join(out)


def _rest_cell(text: str) -> str:
    # Option strings read as code; everything else as it is.
    for option in ("-c 1 -m 100", "-c 10 -m 10", "-c 100 -m 1", "-c 1 -m 4"):
        text = text.replace(option, f"``{option}``")
    return text or ".."


def _about(about: dict[str, Any], settings: dict[str, Any]) -> str:
    today = datetime.date.today().isoformat()
    return (
        f"Measured {today} on {about['cpus']} x {about['cpu']} ({about['kernel']}), "
        f"Python {about['python']}, trio {about['trio']}, h2 {about['h2']}, "
        f"trio_h2 at {about['trio_h2']}, Hypercorn {about['hypercorn']}, {about['h2load']}. "
        f"Each figure is the median of {settings['repeat']} runs of "
        f"{settings['duration_s']:g} s after {settings['warm_up_s']:g} s of warm-up; the "
        f"whole bench took {about['elapsed_s'] / 60:.0f} minutes, with a load average of "
        f"{about['load_average']} when it started and {about['load_average_end']} "
        "when it ended.")


def markdown(rows: list[dict[str, Any]], idle: dict[str, float | None],
             about: dict[str, Any], settings: dict[str, Any]) -> str:
    """The results as a Markdown table, for readers outside Sphinx."""
    lines = _lines(rows, idle)
    out = ["<!-- Written by bench/compare.py; edit that, not this file. -->", "",
           "# trio_h2 and Hypercorn: results", "", _about(about, settings), "",
           f"Median (lowest\N{EN DASH}highest) of {settings['repeat']} runs; higher is "
           "better, except for memory. How it is measured: docs/performance.rst.", ""]
    out.append("| " + " | ".join(lines[0]) + " |")
    out.append("|" + "|".join(["---"] + ["---:"] * (len(lines[0]) - 1)) + "|")
    out += ["| " + " | ".join(cell or "" for cell in line) + " |" for line in lines[1:]]
    notes = _notes(rows)
    if notes:
        out += ["", "Failures and errors during the run:", ""]
        out += [f"- {note}" for note in notes]
    return "\n".join(out) + "\n"


def rest(rows: list[dict[str, Any]], idle: dict[str, float | None], about: dict[str, Any],
         settings: dict[str, Any]) -> str:
    """The results as reST: a sentence on the machine, a list-table, notes."""
    runs = settings["repeat"]
    out = [
        ".. Written by bench/compare.py; edit that, not this file.",
        "",
        _about(about, settings),
        "",
        f".. list-table:: Median (lowest\N{EN DASH}highest) of {runs} runs; higher is better,"
        " except for memory",
        "   :header-rows: 1",
        "   :stub-columns: 1",
        "",
    ]
    for line in _lines(rows, idle):
        first, *rest_cells = line
        out.append(f"   * - {_rest_cell(first)}")
        out += [f"     - {_rest_cell(cell)}" for cell in rest_cells]
    notes = _notes(rows)
    if notes:
        out += ["", "Failures and errors during the run:", ""]
        out += [f"* {_rest_cell(note)}" for note in notes]
    return "\n".join(out) + "\n"


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """A bar per load: the ratio trio_h2/Hypercorn, with the target at 3x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = [row["title"].replace(", ", "\n", 1) for row in rows]
    ratios = [row["ratio"] or 0.0 for row in rows]
    colours = ["tab:orange" if row["load"].endswith("-tls") else "tab:blue" for row in rows]
    figure, axes = plt.subplots(figsize=(11, 4.8))
    bars = axes.bar(range(len(rows)), ratios, color=colours)
    for bar, row in zip(bars, rows, strict=True):
        label = "failed" if row["ratio"] is None else f"{row['ratio']:.2f}x"
        axes.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                      ha="center", va="bottom", fontsize=8, xytext=(0, 2),
                      textcoords="offset points")
    axes.axhline(TARGET, color="tab:red", linestyle="--", label=f"target, {TARGET:g}x")
    axes.axhline(1.0, color="grey", linewidth=0.8, label="parity")
    axes.bar([0], [0], color="tab:blue", label="h2c (plain TCP)")
    axes.bar([0], [0], color="tab:orange", label="TLS")
    axes.set_xticks(range(len(rows)), titles, fontsize=7)
    axes.set_ylabel("trio_h2 / Hypercorn (higher is better)")
    axes.set_ylim(0, max([TARGET, *ratios]) * 1.15)
    axes.set_title("trio_h2 against Hypercorn's trio worker, same ASGI app, h2load")
    axes.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
