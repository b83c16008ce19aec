"use strict";
// The priority page of trio_h2's demo (trio_h2/_apps/priority_page.py).
// Loads the resources listed in #resources, low ones first, then asks the
// server what its sender sent on this connection and draws the waterfall.

const SVG = "http://www.w3.org/2000/svg";
// RFC 9218 urgency 0 (most urgent) to 7.
const URGENCY_COLOURS = ["#e8453c", "#f08c2e", "#e6b422", "#4caf7a", "#3d8fd6", "#7b68d9",
  "#a06cb5", "#8d96a8"];
const MiB = 1048576;
const LATE_MS = 50;

function el(name, attributes = {}, text = null) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text !== null) node.textContent = text;
  return node;
}

// One resource, loaded the way a page would load it; resolves when all of it
// has arrived.
function load(item) {
  const path = item.dataset.path;
  const how = item.dataset.how;
  const wanted = item.dataset.wanted;
  if (how === "fetch" || how === "late") {
    return fetch(path, { priority: wanted, cache: "no-store" })
      .then((response) => response.arrayBuffer());
  }
  return new Promise((resolve, reject) => {
    let node;
    if (how === "img") {
      node = new Image();  // not in the document yet: no boost for being in view
    } else if (how === "css") {
      node = document.createElement("link");
      node.rel = "stylesheet";
    } else {
      node = document.createElement("script");
      node.async = true;
    }
    node.fetchPriority = wanted;
    node.onload = () => resolve(node);
    node.onerror = () => reject(new Error(path + " failed"));
    if (how === "css") {
      node.href = path;
      document.head.append(node);
    } else if (how === "script") {
      node.src = path;
      document.head.append(node);
    } else {
      node.src = path;
      node.alt = item.textContent;
    }
  });
}

async function loadAll() {
  const items = [...document.querySelectorAll("#resources li")];
  const late = items.find((item) => item.dataset.how === "late");
  let lateStarted = null;
  const startLate = () => {
    if (!lateStarted) lateStarted = load(late);
    return lateStarted;
  };
  const loads = [];
  for (const item of items) {
    if (item === late) continue;
    loads.push(load(item));
  }
  // The late one goes out while the others are under way.
  setTimeout(startLate, LATE_MS);
  const results = await Promise.all(loads);
  await startLate();
  return results.filter((result) => result instanceof HTMLImageElement);
}

function describeAsked(note) {
  const parts = [];
  if (note.priority_field !== null) {
    const field = note.priority_field || "(empty)";
    parts.push(field.length > 16 ? field.slice(0, 15) + "…" : field);
  }
  if (note.rfc7540 !== null) {
    parts.push("weight " + note.rfc7540.weight + " on " + note.rfc7540.depends_on +
      (note.exclusive ? " excl." : ""));
  }
  return parts.join(" · ") || "no signal";
}

function urgencyOf(signal) {
  if (signal.urgency !== undefined) return signal.urgency;
  // RFC 7540 weights as Chromium maps its priorities (256, 220, 183, 147, 110).
  return Math.min(7, Math.max(0, Math.round((256 - signal.weight) / 36.6)));
}

// Where in the connection's bytes each DATA frame went: coalesced runs per stream.
function runsOf(sends) {
  const runs = [];
  const timeAt = [];  // [position, time] at each frame
  let position = 0;
  for (const [time, stream, size, signal] of sends) {
    const last = runs[runs.length - 1];
    if (last && last.stream === stream && last.urgency === urgencyOf(signal)) {
      last.end += size;
    } else {
      runs.push({ stream, start: position, end: position + size, urgency: urgencyOf(signal) });
    }
    position += size;
    timeAt.push([position, time]);
  }
  return { runs, timeAt, total: position };
}

function positionAt(timeAt, time) {
  let position = 0;
  for (const [at, sentTime] of timeAt) {
    if (sentTime > time) break;
    position = at;
  }
  return position;
}

function timeAtPosition(timeAt, position) {
  for (const [at, time] of timeAt) if (at >= position) return time;
  return timeAt.length ? timeAt[timeAt.length - 1][1] : 0;
}

function draw(record, summary) {
  const notes = new Map(record.streams.map((note) => [note.stream_id, note]));
  const byPath = new Map(summary.resources.map((entry) => [entry.path, entry]));
  const rows = [...document.querySelectorAll("#resources li")].map((item) => {
    const entry = byPath.get(item.dataset.path);
    return { item, entry, note: entry ? notes.get(entry.stream_id) : undefined };
  });
  // In the order the browser sent the requests (stream ids).
  rows.sort((a, b) => (a.entry ? a.entry.stream_id : 1e9) - (b.entry ? b.entry.stream_id : 1e9));
  const { runs, timeAt, total } = runsOf(record.sends);
  const width = 960, left = 330, right = 72, top = 34, lane = 34, bottom = 58;
  const plot = width - left - right;
  const height = top + lane * rows.length + bottom;
  const x = (position) => left + (total ? position / total : 0) * plot;
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": "bytes sent per response over the connection's bytes" });
  svg.append(el("title", {}, "What trio_h2 sent on this connection"));

  // Axis: MiB below, milliseconds above.
  const step = total > 24 * MiB ? 4 * MiB : total > 10 * MiB ? 2 * MiB : MiB;
  for (let position = 0; position <= total; position += step) {
    svg.append(el("line", { x1: x(position), x2: x(position), y1: top - 6,
      y2: top + lane * rows.length, class: "grid" }));
    svg.append(el("text", { x: x(position), y: top + lane * rows.length + 18,
      class: "axis", "text-anchor": "middle" }, `${position / MiB}`));
    svg.append(el("text", { x: x(position), y: top - 12, class: "axis time",
      "text-anchor": "middle" }, `${Math.round(timeAtPosition(timeAt, position) * 1000)} ms`));
  }
  svg.append(el("text", { x: left - 28, y: top - 12, class: "axis time", "text-anchor": "end" },
    "sent at"));
  svg.append(el("text", { x: left + plot / 2, y: top + lane * rows.length + 40,
    class: "axis-title", "text-anchor": "middle" },
  "MiB sent on the connection (each block: DATA frames of one response, in wire order)"));

  rows.forEach(({ item, entry, note }, index) => {
    const y = top + index * lane;
    const group = el("g", { class: "lane " + item.dataset.wanted });
    group.append(el("rect", { x: 0, y, width, height: lane, class: index % 2 ? "odd" : "even" }));
    group.append(el("text", { x: 10, y: y + 14, class: "label" }, item.textContent));
    group.append(el("text", { x: 10, y: y + 27, class: "asked" },
      (entry ? `stream ${entry.stream_id} · ` : "") +
      (item.dataset.wanted === "high" ? "▲ " : "▽ ") +
      (note ? describeAsked(note) : "not recorded")));
    if (entry && note) {
      const arrived = positionAt(timeAt, note.opened_at);
      group.append(el("line", { x1: x(arrived), x2: x(entry.last_byte_at), y1: y + lane / 2,
        y2: y + lane / 2, class: "waiting" }));
      for (const run of runs) {
        if (run.stream !== entry.stream_id) continue;
        group.append(el("rect", { x: x(run.start), y: y + 7,
          width: Math.max(x(run.end) - x(run.start), 0.6), height: lane - 14,
          fill: URGENCY_COLOURS[run.urgency], class: "run" }));
      }
      group.append(el("text", { x: width - right + 10, y: y + 21, class: "rank" },
        "#" + entry.rank));
    }
    svg.append(group);
  });

  // Legend: the urgencies that occur.
  const used = [...new Set(runs.map((run) => run.urgency))].sort();
  let legendX = left;
  for (const urgency of used) {
    svg.append(el("rect", { x: legendX, y: height - 14, width: 12, height: 12, rx: 2,
      fill: URGENCY_COLOURS[urgency] }));
    svg.append(el("text", { x: legendX + 16, y: height - 4, class: "legend" },
      `urgency ${urgency}`));
    legendX += 96;
  }
  svg.append(el("text", { x: legendX + 8, y: height - 4, class: "legend" },
    "▲ / ▽: the page asked for high / low"));
  document.getElementById("waterfall").replaceChildren(svg);
}

function explainScheme(record) {
  const notes = record.streams.filter((note) =>
    [...document.querySelectorAll("#resources li")].some((li) => li.dataset.path === note.path));
  const withField = notes.filter((note) => note.priority_field !== null).length;
  const withTree = notes.filter((note) => note.rfc7540 !== null).length;
  const parts = [];
  if (withField) {
    parts.push(`${withField} of ${notes.length} requests carried the RFC 9218 priority ` +
      "header (urgency u=0 to 7, incremental i)");
  }
  if (withTree) {
    parts.push(`${withTree} carried RFC 7540 priority in their HEADERS frame (a weight ` +
      "and the stream they depend on)");
  }
  let text = "Your browser's signals: " + (parts.join("; ") || "none") + ". ";
  text += withField
    ? "Where both are present, trio_h2 schedules by the RFC 9218 header."
    : withTree ? "trio_h2 scheduled by the RFC 7540 weights and dependencies." : "";
  if (record.priorities_ignored) text += " This time the scheduler ignored them all.";
  return text;
}

function writeOrder(summary) {
  const table = document.createElement("table");
  table.id = "order";
  table.innerHTML = "<thead><tr><th>#</th><th>Response</th><th>Asked</th>" +
    "<th class=num>Last byte at</th><th class=num>Time</th></tr></thead>";
  const body = document.createElement("tbody");
  for (const entry of summary.resources) {
    const row = document.createElement("tr");
    row.className = entry.wanted;
    Object.assign(row.dataset, { path: entry.path, wanted: entry.wanted,
      rank: entry.rank, lastByteAt: entry.last_byte_at });
    for (const [text, cls] of [[entry.rank, "num"], [entry.label, ""], [entry.wanted, ""],
      [(entry.last_byte_at / MiB).toFixed(2) + " MiB", "num"],
      [Math.round(entry.last_time * 1000) + " ms", "num"]]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      cell.className = cls;
      row.append(cell);
    }
    body.append(row);
  }
  table.append(body);
  document.getElementById("waterfall").after(table);
}

async function main() {
  if (document.body.dataset.http2 !== "yes") return;
  const status = document.getElementById("status");
  const verdict = document.getElementById("verdict");
  try {
    const images = await loadAll();
    status.textContent = "All loaded; asking the server what it sent…";
    const response = await fetch("/priority/record.json", { cache: "no-store" });
    const { record, summary } = await response.json();
    draw(record, summary);
    writeOrder(summary);
    document.getElementById("scheme").textContent = explainScheme(record);
    verdict.dataset.verdict = summary.verdict;
    verdict.textContent = {
      "high-first": "Every high-priority response finished before any low-priority one " +
        "(judged by the order of their last bytes on the wire).",
      mixed: "Low-priority responses finished before high-priority ones " +
        "(judged by the order of their last bytes on the wire).",
      incomplete: "Some responses are missing from the server's record.",
    }[summary.verdict];
    verdict.className = summary.verdict;
    const total = (summary.total_bytes / MiB).toFixed(1);
    status.textContent = `${summary.resources.length} responses, ${total} MiB, ` +
      `${record.sends.length} DATA frames recorded` +
      (record.frames_left_out ? ` (${record.frames_left_out} more not recorded)` : "") + ".";
    const gallery = document.createElement("div");
    gallery.className = "gallery";
    gallery.append(...images);
    document.getElementById("scheme").after(gallery);
  } catch (error) {
    status.textContent = "Failed: " + error;
    verdict.dataset.verdict = "failed";
  }
}

main();
