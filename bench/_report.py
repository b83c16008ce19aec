"""Tables and the plots for ``bench/compare.py``'s summary rows, one per suite."""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import _wrk

if TYPE_CHECKING:
    from bench.compare import Load, Run, Suite

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Table:
    """One suite's summary rows (``compare.summarise``) and idle RSS per server."""

    suite: Suite
    rows: list[dict[str, Any]]
    idle: dict[str, float | None]

    @property
    def others(self) -> tuple[str, ...]:
        """The servers trio_h2 is compared with."""
        return self.suite.servers[1:]


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


def _lines(table: Table) -> list[list[str]]:
    servers = table.suite.servers
    lines = [["Load", *servers, *(f"trio_h2 / {name}" for name in table.others),
              *(f"peak RSS {name}" for name in servers)]]
    for row in table.rows:
        lines.append([f"{row['title']}, {row['unit']}",
                      *(_cell(row[name]) for name in servers),
                      *(_ratio(row["ratios"][name]) for name in table.others),
                      *(_mib(row[name]["peak_rss"]) for name in servers)])
    lines.append(["idle, after start-up", *[""] * (len(servers) + len(table.others)),
                  *(_mib(table.idle[name]) for name in servers)])
    return lines


def _notes(table: Table) -> list[str]:
    notes = []
    for row in table.rows:
        for name in table.suite.servers:
            side = row[name]
            if side["problems"]:
                notes.append(f"{row['title']}: {name} failed {side['failed_runs']} of "
                             f"{side['runs']} runs: {'; '.join(side['problems'])}.")
            errors = "; ".join(side["errors"]) or "nothing logged"
            if side["runs_with_exit"]:
                statuses = ", ".join(str(status) for status in side["exits"])
                when = (f"after the measured period, as {table.suite.client} closed its "
                        "connections"
                        if not side["problems"] else "during or after the run")
                notes.append(f"{row['title']}: {name} exited with status {statuses} {when}, "
                             f"in {side['runs_with_exit']} of {side['runs']} runs: {errors}.")
            elif side["runs_with_errors"]:
                notes.append(f"{row['title']}: {name} logged, in "
                             f"{side['runs_with_errors']} of {side['runs']} runs: "
                             f"{errors}.")
    return notes


def text_table(table: Table) -> str:
    lines = _lines(table)
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = ["  ".join(cell.ljust(width) if i == 0 else cell.rjust(width)
                     for i, (cell, width) in enumerate(zip(line, widths, strict=True)))
           for line in lines]
    out.insert(1, "  ".join("-" * width for width in widths))
    peak = next((row for row in table.rows if row["load"] == table.suite.peak_load), None)
    if peak is not None:
        out.append("\npeak RSS at 100 connections: " + ", ".join(
            f"{name} {_mib(peak[name]['peak_rss'])}" for name in table.suite.servers))
    notes = _notes(table)
    out += ["", *notes] if notes else []
    return "\n".join(out)


# Option strings, such as "-c 1 -m 100" or "-c 10", read as code.
_OPTIONS = re.compile(r"-c \d+(?: -m \d+)?")


def _rest_cell(text: str) -> str:
    return _OPTIONS.sub(lambda option: f"``{option.group()}``", text) or ".."


def _about(table: Table, about: dict[str, Any], settings: dict[str, Any]) -> str:
    today = datetime.date.today().isoformat()
    duration, warm_up = settings["duration_s"], settings["warm_up_s"]
    if table.suite.client == "wrk":
        duration, warm_up = _wrk.whole_seconds(duration), _wrk.whole_seconds(warm_up)
        software = (f"Hypercorn {about['hypercorn']} (trio worker, h11), uvicorn "
                    f"{about['uvicorn']} (``--http h11``, on asyncio), "
                    f"h11 {about['h11']}, "
                    f"{about['wrk']} with one thread")
    else:
        software = f"Hypercorn {about['hypercorn']}, {about['h2load']}"
    return (
        f"Measured {today} on {about['cpus']} x {about['cpu']} ({about['kernel']}), "
        f"Python {about['python']}, trio {about['trio']}, h2 {about['h2']}, "
        f"trio_h2 at {about['trio_h2']}, {software}. "
        f"Each figure is the median of {settings['repeat']} runs of "
        f"{duration:g} s after {warm_up:g} s of warm-up; the "
        f"whole bench took {about['elapsed_s'] / 60:.0f} minutes, with a load average of "
        f"{about['load_average']} when it started and {about['load_average_end']} "
        "when it ended.")


def _heading(table: Table) -> str:
    servers = table.suite.servers
    names = f"{', '.join(servers[:-1])} and {servers[-1]}"
    return f"{names} over {table.suite.title}: results"


def markdown(table: Table, about: dict[str, Any], settings: dict[str, Any]) -> str:
    """The results as a Markdown table, for readers outside Sphinx."""
    lines = _lines(table)
    out = ["<!-- Written by bench/compare.py; edit that, not this file. -->", "",
           f"# {_heading(table)}", "", _about(table, about, settings), "",
           f"Median (lowest\N{EN DASH}highest) of {settings['repeat']} runs; higher is "
           "better, except for memory. How it is measured: docs/performance.rst.", ""]
    out.append("| " + " | ".join(lines[0]) + " |")
    out.append("|" + "|".join(["---"] + ["---:"] * (len(lines[0]) - 1)) + "|")
    out += ["| " + " | ".join(cell or "" for cell in line) + " |" for line in lines[1:]]
    notes = _notes(table)
    if notes:
        out += ["", "Failures and errors during the run:", ""]
        out += [f"- {note}" for note in notes]
    return "\n".join(out) + "\n"


def rest(table: Table, about: dict[str, Any], settings: dict[str, Any]) -> str:
    """The results as reST: a sentence on the machine, a list-table, notes."""
    runs = settings["repeat"]
    out = [
        ".. Written by bench/compare.py; edit that, not this file.",
        "",
        _about(table, about, settings),
        "",
        f".. list-table:: Median (lowest\N{EN DASH}highest) of {runs} runs; higher is better,"
        " except for memory",
        "   :header-rows: 1",
        "   :stub-columns: 1",
        "",
    ]
    for line in _lines(table):
        first, *rest_cells = line
        out.append(f"   * - {_rest_cell(first)}")
        out += [f"     - {_rest_cell(cell)}" for cell in rest_cells]
    notes = _notes(table)
    if notes:
        out += ["", "Failures and errors during the run:", ""]
        out += [f"* {_rest_cell(note)}" for note in notes]
    return "\n".join(out) + "\n"


def plot(table: Table, path: Path) -> None:
    """Bars of trio_h2 / each other server per load, a colour for each other
    server (and for TLS), and a dashed line for each target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, others, suite = table.rows, table.others, table.suite
    colours = iter(["tab:blue", "tab:orange", "tab:green", "tab:purple"])
    series = {(name, tls): next(colours) for name in others
              for tls in sorted({bool(row["tls"]) for row in rows})}
    width = 0.8 / len(others)
    figure, axes = plt.subplots(figsize=(11, 4.8))
    for (name, tls), colour in series.items():
        index = others.index(name)
        places = [(i + (index - (len(others) - 1) / 2) * width, row)
                  for i, row in enumerate(rows) if bool(row["tls"]) == tls]
        label = name if len(others) > 1 else ""
        if len(series) > len(others):
            label = ", ".join(filter(None, [label, "TLS" if tls else "plain TCP"]))
        bars = axes.bar([x for x, _ in places], [row["ratios"][name] or 0.0 for _, row in places],
                        width=width, color=colour, label=label or None)
        for bar, (_, row) in zip(bars, places, strict=True):
            ratio = row["ratios"][name]
            axes.annotate("failed" if ratio is None else f"{ratio:.2f}x",
                          (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                          ha="center", va="bottom", fontsize=7, xytext=(0, 2),
                          textcoords="offset points")
    for (name, target), style in zip(suite.targets.items(), ["--", ":"], strict=False):
        axes.axhline(target, color="tab:red", linestyle=style,
                     label=f"target against {name}, {target:g}x")
    axes.axhline(1.0, color="grey", linewidth=0.8, label="parity")
    titles = [row["title"].replace(", ", "\n", 1) for row in rows]
    axes.set_xticks(range(len(rows)), titles, fontsize=7)
    axes.set_ylabel("trio_h2 / other server (higher is better)")
    ratios = [ratio or 0.0 for row in rows for ratio in row["ratios"].values()]
    axes.set_ylim(0, max([*suite.targets.values(), *ratios]) * 1.15)
    against = others[0] if len(others) == 1 else f"{', '.join(others[:-1])} and {others[-1]}"
    axes.set_title(f"trio_h2 against {against}, same ASGI app, {suite.title}, "
                   f"{suite.client}")
    axes.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
