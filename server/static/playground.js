// GRAM serve playground. Receives this server's own API (GET /models, POST /solve and /generate
// streamed as Server-Sent Events over fetch, GET /metrics) and hands on boards in the page: the
// task-aware puzzle input, candidates as they verify (violations marked), the final answer, and a
// latency-vs-width chart. Judges nothing itself except to point at the cells a violation involves.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { models: [], model: null, sudoku: [], queens: new Set(), abort: null, streamed: 0 };

const EXAMPLES = {
  4: "....31.4.342.2.3",
  6: "2...4..5.6..........63.1.2..3..3..5.",
  9: "....24.5.5.1......9....8...68...72..1....3.8.....8..9...6....3....3....58...5.927",
};
const GRAPH_EXAMPLES = {
  8: "0-1 0-2 0-5 0-6 1-5 1-7 3-6 5-7 6-7",
  10: "0-1 1-2 2-3 3-4 4-0 0-5 1-6 2-7 3-8 4-9 5-7 7-9 9-6 6-8 8-5", // the Petersen graph
};
const PALETTE = ["#ef4444", "#3b82f6", "#22c55e", "#eab308", "#a855f7", "#f97316", "#14b8a6", "#ec4899"];

// ------------------------------------------------------------------------------------ HTTP

function headers(extra) {
  const h = { "Content-Type": "application/json", ...extra };
  const key = $("api-key").value.trim();
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

async function errorText(response) {
  // the error envelope {"error": {type, message, field, ...}} of every non-2xx answer
  let body = null;
  try { body = await response.json(); } catch (_) { /* not JSON: a proxy page */ }
  const e = body && body.error;
  if (!e) return `${response.status} ${response.statusText}`;
  return `${response.status} ${e.type}: ${e.message}` + (e.field ? ` (field ${e.field})` : "");
}

function envelopeText(data, prefix) {
  const e = data.error || {};
  return `${prefix}${e.type}: ${e.message}` + (e.field ? ` (field ${e.field})` : "");
}

// POST with "stream": true; calls onEvent(name, data) for each Server-Sent Event
async function stream(path, body, onEvent, signal) {
  const response = await fetch(path, {
    method: "POST",
    headers: headers({ Accept: "text/event-stream" }),
    body: JSON.stringify({ ...body, stream: true }),
    signal,
  });
  if (!response.ok) throw new Error(await errorText(response));
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of frame.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const i = line.indexOf(":");
        const field = i < 0 ? line : line.slice(0, i);
        let text = i < 0 ? "" : line.slice(i + 1);
        if (text.startsWith(" ")) text = text.slice(1);
        if (field === "event") name = text;
        else if (field === "data") data.push(text);
      }
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
    }
  }
}

// ------------------------------------------------------------------------------------ models

async function loadModels() {
  showError(null);
  try {
    const response = await fetch("/models", { headers: headers() });
    if (!response.ok) throw new Error(await errorText(response));
    state.models = (await response.json()).models;
  } catch (err) {
    state.models = [];
    showError(`GET /models: ${err.message}`);
  }
  const select = $("model");
  const previous = select.value;
  select.innerHTML = "";
  for (const m of state.models) {
    const option = document.createElement("option");
    option.value = m.name;
    const what = m.task === "graph_coloring" ? `${m.size} nodes, ${m.num_colors} colours` : `size ${m.size}`;
    option.textContent = `${m.name} (${m.task}, ${what}, ${m.endpoints.join(" + ")})`;
    select.appendChild(option);
  }
  const keep = state.models.find((m) => m.name === previous);
  // open on a Sudoku solver (the largest board loaded), else any default solver
  const sudoku = state.models
    .filter((m) => m.default && m.conditional && m.task === "sudoku")
    .sort((a, b) => b.size - a.size)[0];
  const preferred = keep || sudoku || state.models.find((m) => m.default && m.conditional) || state.models[0];
  if (preferred) select.value = preferred.name;
  selectModel();
}

function selectModel() {
  const m = state.models.find((x) => x.name === $("model").value) || null;
  state.model = m;
  for (const id of ["puzzle-sudoku", "puzzle-nqueens", "puzzle-graph"]) $(id).hidden = true;
  $("model-info").textContent = m
    ? `${m.parameters.toLocaleString()} parameters · ${m.mode}` + (m.default ? " · default" : "")
    : "no models loaded";
  const solving = !!(m && m.conditional);
  const generating = !!(m && m.endpoints.includes("generate")); // a solver may generate too
  $("solve").hidden = !solving;
  $("generate").hidden = !generating;
  $("width-label").hidden = !solving;
  $("count-label").hidden = !generating;
  if (m && m.defaults && m.defaults.steps) $("steps").value = m.defaults.steps; // the model's budget
  if (!m || !solving) return;
  if (m.task === "sudoku") {
    $("puzzle-sudoku").hidden = false;
    if (state.sudoku.length !== m.size * m.size) buildSudoku(m.size, "");
  } else if (m.task === "nqueens") {
    $("puzzle-nqueens").hidden = false;
    buildQueens(m.size);
  } else {
    $("puzzle-graph").hidden = false;
    $("graph-nodes").value = m.size;
    if (m.num_colors) $("graph-colors").value = m.num_colors;
    parseGraph();
  }
}

// ------------------------------------------------------------------------------------ sudoku

function boxShape(n) {
  let rows = 1;
  for (let d = 1; d * d <= n; d++) if (n % d === 0) rows = d;
  return [rows, n / rows];
}

function boxClasses(el, n, r, c) {
  const [br, bc] = boxShape(n);
  if ((c + 1) % bc === 0 && c < n - 1) el.classList.add("box-right");
  if ((r + 1) % br === 0 && r < n - 1) el.classList.add("box-bottom");
}

function buildSudoku(n, digits) {
  const grid = $("sudoku-grid");
  grid.innerHTML = "";
  grid.style.gridTemplateColumns = `repeat(${n}, auto)`;
  state.sudoku = [];
  for (let i = 0; i < n * n; i++) {
    const input = document.createElement("input");
    input.maxLength = 1;
    input.inputMode = "numeric";
    input.dataset.cell = String(i);
    input.setAttribute("aria-label", `row ${Math.floor(i / n) + 1} column ${(i % n) + 1}`);
    const ch = digits[i] || ".";
    input.value = /[1-9]/.test(ch) ? ch : "";
    input.addEventListener("input", () => {
      input.value = input.value.replace(/[^1-9]/g, "");
      $("sudoku-text").value = sudokuString();
    });
    boxClasses(input, n, Math.floor(i / n), i % n);
    grid.appendChild(input);
    state.sudoku.push(input);
  }
  $("sudoku-text").value = sudokuString();
}

function sudokuString() {
  return state.sudoku.map((input) => input.value || ".").join("");
}

// cells that break a rule: duplicates in a row, column or box, blanks, and changed givens
function sudokuBad(solution, givens, n) {
  const bad = new Set();
  const [br, bc] = boxShape(n);
  const groups = [];
  for (let r = 0; r < n; r++) groups.push([...Array(n).keys()].map((c) => r * n + c));
  for (let c = 0; c < n; c++) groups.push([...Array(n).keys()].map((r) => r * n + c));
  for (let b0 = 0; b0 < n; b0 += br)
    for (let c0 = 0; c0 < n; c0 += bc) {
      const cells = [];
      for (let r = b0; r < b0 + br; r++) for (let c = c0; c < c0 + bc; c++) cells.push(r * n + c);
      groups.push(cells);
    }
  for (const cells of groups) {
    const seen = new Map();
    for (const i of cells) {
      const d = solution[i];
      if (!/[1-9]/.test(d)) { bad.add(i); continue; }
      if (seen.has(d)) { bad.add(i); bad.add(seen.get(d)); } else seen.set(d, i);
    }
  }
  for (let i = 0; i < n * n; i++) if (givens && /[1-9]/.test(givens[i]) && givens[i] !== solution[i]) bad.add(i);
  return bad;
}

function renderSudoku(solution, givens) {
  const n = Math.round(Math.sqrt(solution.length));
  const bad = sudokuBad(solution, givens, n);
  const grid = document.createElement("div");
  grid.className = "sudoku";
  grid.style.gridTemplateColumns = `repeat(${n}, auto)`;
  for (let i = 0; i < n * n; i++) {
    const cell = document.createElement("span");
    cell.textContent = /[1-9]/.test(solution[i]) ? solution[i] : "·";
    if (givens && /[1-9]/.test(givens[i])) cell.classList.add("given");
    if (bad.has(i)) cell.classList.add("bad");
    boxClasses(cell, n, Math.floor(i / n), i % n);
    grid.appendChild(cell);
  }
  return grid;
}

// ------------------------------------------------------------------------------------ n-queens

function buildQueens(n) {
  const board = $("queens-board");
  board.className = "board input";
  board.innerHTML = "";
  board.style.gridTemplateColumns = `repeat(${n}, auto)`;
  state.queens = new Set([...state.queens].filter((k) => k.split(",").every((v) => Number(v) < n)));
  for (let r = 0; r < n; r++)
    for (let c = 0; c < n; c++) {
      const square = document.createElement("div");
      const key = `${r},${c}`;
      if ((r + c) % 2) square.classList.add("dark");
      square.dataset.square = key;
      square.textContent = state.queens.has(key) ? "♛" : "";
      square.addEventListener("click", () => {
        if (state.queens.has(key)) state.queens.delete(key); else state.queens.add(key);
        square.textContent = state.queens.has(key) ? "♛" : "";
      });
      board.appendChild(square);
    }
}

function renderQueens(solution, given) {
  const n = solution.n;
  const queens = solution.queens.map(([r, c]) => [r, c]);
  const attacked = new Set();
  for (let i = 0; i < queens.length; i++)
    for (let j = i + 1; j < queens.length; j++) {
      const [a, b] = [queens[i], queens[j]];
      if (a[0] === b[0] || a[1] === b[1] || Math.abs(a[0] - b[0]) === Math.abs(a[1] - b[1])) {
        attacked.add(`${a[0]},${a[1]}`);
        attacked.add(`${b[0]},${b[1]}`);
      }
    }
  const placed = new Set(queens.map(([r, c]) => `${r},${c}`));
  const filled = new Set(queens.map(([r]) => r)); // a row without a queen is a violation too
  const givens = new Set((given || []).map(([r, c]) => `${r},${c}`));
  const board = document.createElement("div");
  board.className = "board";
  board.style.gridTemplateColumns = `repeat(${n}, auto)`;
  for (let r = 0; r < n; r++)
    for (let c = 0; c < n; c++) {
      const key = `${r},${c}`;
      const square = document.createElement("div");
      if ((r + c) % 2) square.classList.add("dark");
      if (placed.has(key)) {
        square.textContent = "♛";
        if (givens.has(key)) square.classList.add("given");
        if (attacked.has(key)) square.classList.add("bad");
      } else if (givens.has(key)) {
        square.textContent = "♛";
        square.classList.add("missing", "bad"); // a given queen the answer dropped
      } else if (!filled.has(r)) {
        square.classList.add("bad");
      }
      board.appendChild(square);
    }
  return board;
}

// ------------------------------------------------------------------------------------ graph colouring

// "0-1 1-2" / "0 1\n1 2" (0-based), or DIMACS "p edge N M" with "e u v" lines (1-based)
function parseGraph() {
  const text = $("graph-edges").value;
  let nodes = Number($("graph-nodes").value);
  const edges = [];
  if (/^\s*p\s+edge/m.test(text)) {
    for (const line of text.split("\n")) {
      const parts = line.trim().split(/\s+/);
      if (parts[0] === "p") nodes = Number(parts[2]);
      else if (parts[0] === "e") edges.push([Number(parts[1]) - 1, Number(parts[2]) - 1]);
    }
    $("graph-nodes").value = nodes;
  } else {
    const numbers = (text.match(/\d+/g) || []).map(Number);
    for (let i = 0; i + 1 < numbers.length; i += 2) edges.push([numbers[i], numbers[i + 1]]);
  }
  $("graph-parsed").textContent = `${nodes} nodes, ${edges.length} edges`;
  return { num_nodes: nodes, edges, num_colors: Number($("graph-colors").value) };
}

function renderColoring(colors, edges) {
  const n = colors.length;
  const size = 170, mid = size / 2, radius = 62;
  const at = (i) => [mid + radius * Math.cos((2 * Math.PI * i) / n - Math.PI / 2),
                     mid + radius * Math.sin((2 * Math.PI * i) / n - Math.PI / 2)];
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", size);
  svg.setAttribute("height", size);
  for (const [u, v] of edges) {
    const line = document.createElementNS(ns, "line");
    const [[x1, y1], [x2, y2]] = [at(u), at(v)];
    Object.entries({ x1, y1, x2, y2 }).forEach(([k, val]) => line.setAttribute(k, val));
    if (colors[u] === colors[v] && colors[u] >= 0) line.classList.add("bad"); // a monochrome edge
    svg.appendChild(line);
  }
  colors.forEach((c, i) => {
    const [x, y] = at(i);
    const dot = document.createElementNS(ns, "circle");
    dot.setAttribute("cx", x);
    dot.setAttribute("cy", y);
    dot.setAttribute("r", 11);
    dot.setAttribute("fill", c >= 0 ? PALETTE[c % PALETTE.length] : "#fff");
    dot.setAttribute("stroke", c >= 0 ? "#374151" : "#b91c1c");
    svg.appendChild(dot);
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", x);
    label.setAttribute("y", y + 4);
    label.setAttribute("text-anchor", "middle");
    label.setAttribute("font-size", "11");
    label.textContent = String(i);
    svg.appendChild(label);
  });
  return svg;
}

// ------------------------------------------------------------------------------------ answers

function puzzleFor(model) {
  if (model.task === "sudoku") return sudokuString();
  if (model.task === "nqueens")
    return { n: model.size, queens: [...state.queens].map((k) => k.split(",").map(Number)).sort((a, b) => a[0] - b[0]) };
  return parseGraph();
}

function renderAnswer(task, answer, puzzle) {
  if (task === "sudoku") return renderSudoku(answer, typeof puzzle === "string" ? puzzle : null);
  if (task === "nqueens") return renderQueens(answer, puzzle ? puzzle.queens : []);
  return renderColoring(answer.colors, puzzle ? puzzle.edges : []);
}

function card(task, answer, puzzle, fields, meta) {
  const el = document.createElement("div");
  el.className = `card ${fields.valid ? "valid" : "invalid"}`;
  const badge = document.createElement("div");
  badge.className = "badge";
  const v = fields.violations;
  badge.textContent = fields.valid ? "VALID" : `${v} VIOLATION${v === 1 ? "" : "S"}`;
  badge.textContent += ` · score ${fields.score.toFixed(2)}`;
  el.appendChild(badge);
  el.appendChild(renderAnswer(task, answer, puzzle));
  const info = document.createElement("div");
  info.className = "meta";
  info.textContent = meta;
  el.appendChild(info);
  return el;
}

function showError(text) {
  $("error").hidden = !text;
  $("error").textContent = text || "";
}

function resetOutput() {
  showError(null);
  $("candidates").innerHTML = "";
  $("final").innerHTML = "";
  $("answer-info").textContent = "";
  $("streamed-count").textContent = "";
  $("status").textContent = "";
  state.streamed = 0;
}

function numberOrNull(id) {
  const v = $(id).value.trim();
  return v === "" ? null : Number(v);
}

function progressText(p, steps) {
  return `step ${p.step}/${steps} · ${p.valid_trajectories} valid trajectories · ` +
         `${p.distinct_valid} distinct · ${p.elapsed_ms.toFixed(0)} ms`;
}

async function run(kind) {
  const m = state.model;
  if (!m) return;
  resetOutput();
  const steps = Number($("steps").value);
  const seed = numberOrNull("seed");
  const puzzle = kind === "solve" ? puzzleFor(m) : null;
  const body = kind === "solve"
    ? { task: m.task, puzzle, width: Number($("width").value), steps, model: m.name }
    : { task: m.task, size: m.size, count: Number($("count").value), steps, model: m.name };
  if (seed !== null) body.seed = seed;
  state.abort = new AbortController();
  $("solve").disabled = $("generate").disabled = true;
  $("stop").disabled = false;
  $("status").textContent = `${kind}: waiting for the first step...`;
  try {
    await stream(`/${kind}`, body, (name, data) => onEvent(kind, name, data, puzzle, steps), state.abort.signal);
  } catch (err) {
    if (err.name === "AbortError") $("status").textContent += " · stopped";
    else showError(err.message);
  } finally {
    $("solve").disabled = $("generate").disabled = false;
    $("stop").disabled = true;
    state.abort = null;
    refreshChart();
  }
}

function onEvent(kind, name, data, puzzle, steps) {
  const task = state.model.task;
  if (name === "progress") {
    $("status").textContent = progressText(data, steps);
  } else if (name === "candidate" || name === "sample") {
    state.streamed += 1;
    $("streamed-count").textContent = `(${state.streamed} distinct valid)`;
    const answer = name === "candidate" ? data.solution : data.sample;
    const meta = `trajectory ${data.trajectory} · step ${data.step} · ${data.elapsed_ms.toFixed(0)} ms`;
    $("candidates").appendChild(card(task, answer, puzzle, data, meta));
  } else if (name === "done") {
    const t = data.timing_ms;
    $("status").textContent = `done · ${t.total.toFixed(0)} ms (queue ${t.queue.toFixed(0)}, compute ${t.compute.toFixed(0)})`;
    if (kind === "solve") {
      $("answer-info").textContent = `seed ${data.seed} · ${data.num_distinct} distinct · ` +
        `${data.num_valid_trajectories}/${data.num_trajectories} trajectories valid`;
      data.candidates.forEach((c, i) => {
        const meta = `#${i + 1} · votes ${c.votes}/${data.width} · lprm ${c.lprm.toFixed(3)}`;
        $("final").appendChild(card(task, c.solution, puzzle, c, meta));
      });
    } else {
      $("answer-info").textContent = `seed ${data.seed} · ${data.num_valid}/${data.samples.length} valid · ` +
        `${data.num_distinct} distinct`;
      data.samples.forEach((s, i) => $("final").appendChild(card(task, s.sample, null, s, `sample ${i + 1}`)));
    }
  } else if (name === "error") {
    showError(envelopeText(data, "failed after the stream began: "));
  }
}

// ------------------------------------------------------------------------------------ latency chart

// gram_request_duration_seconds{endpoint="solve"} by width: cumulative buckets summed over tasks
function parseLatency(text) {
  const byWidth = new Map();
  const entry = (w) => {
    if (!byWidth.has(w)) byWidth.set(w, { buckets: new Map(), sum: 0, count: 0 });
    return byWidth.get(w);
  };
  for (const line of text.split("\n")) {
    const match = /^gram_request_duration_seconds_(bucket|sum|count)\{([^}]*)\}\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels = {};
    for (const [, k, v] of match[2].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[k] = v;
    if (labels.endpoint !== "solve") continue;
    const e = entry(Number(labels.width));
    const value = Number(match[3]);
    if (match[1] === "bucket") {
      const le = labels.le === "+Inf" ? Infinity : Number(labels.le);
      e.buckets.set(le, (e.buckets.get(le) || 0) + value);
    } else e[match[1]] += value;
  }
  return [...byWidth.entries()].filter(([, e]) => e.count > 0).sort((a, b) => a[0] - b[0]);
}

// the q-quantile of a cumulative histogram, linear within a bucket (as PromQL's histogram_quantile)
function quantile(q, buckets, count) {
  const edges = [...buckets.entries()].sort((a, b) => a[0] - b[0]);
  const rank = q * count;
  let lower = 0, below = 0;
  for (const [le, cumulative] of edges) {
    if (cumulative >= rank) {
      if (le === Infinity) return lower;
      const inBucket = cumulative - below;
      return inBucket > 0 ? lower + (le - lower) * ((rank - below) / inBucket) : le;
    }
    lower = le === Infinity ? lower : le;
    below = cumulative;
  }
  return lower;
}

function drawChart(rows) {
  const canvas = $("chart");
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 720, h = canvas.clientHeight || 260;
  canvas.width = w * ratio;
  canvas.height = h * ratio;
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, w, h);
  g.font = "12px system-ui, sans-serif";
  g.fillStyle = "#6b7280";
  if (!rows.length) {
    g.fillText("no /solve requests measured yet", 20, h / 2);
    return;
  }
  const left = 56, right = w - 16, top = 16, bottom = h - 34;
  const series = [["p50", "#2563eb"], ["p95", "#f97316"]];
  const top_ms = Math.max(...rows.map((r) => r.p95)) * 1.15 || 1;
  const x = (i) => (rows.length === 1 ? (left + right) / 2 : left + ((right - left) * i) / (rows.length - 1));
  const y = (ms) => bottom - ((bottom - top) * ms) / top_ms;
  g.strokeStyle = "#d6dae1";
  g.beginPath();
  g.moveTo(left, top);
  g.lineTo(left, bottom);
  g.lineTo(right, bottom);
  g.stroke();
  for (let k = 0; k <= 4; k++) {
    const ms = (top_ms * k) / 4;
    g.fillText(`${ms.toFixed(0)} ms`, 4, y(ms) + 4);
  }
  rows.forEach((r, i) => g.fillText(`w ${r.width}`, x(i) - 12, bottom + 16));
  g.fillText("width (requested, rounded up to a power of two)", left, h - 4);
  series.forEach(([key, colour], s) => {
    g.strokeStyle = g.fillStyle = colour;
    g.lineWidth = 2;
    g.beginPath();
    rows.forEach((r, i) => (i ? g.lineTo(x(i), y(r[key])) : g.moveTo(x(i), y(r[key]))));
    g.stroke();
    rows.forEach((r, i) => g.fillRect(x(i) - 3, y(r[key]) - 3, 6, 6));
    g.fillText(key, right - 70 + s * 36, top + 4);
  });
}

async function refreshChart() {
  let text;
  try {
    const response = await fetch("/metrics", { headers: headers() });
    if (!response.ok) return;
    text = await response.text();
  } catch (_) {
    return;
  }
  const rows = parseLatency(text).map(([width, e]) => ({
    width,
    count: e.count,
    p50: 1000 * quantile(0.5, e.buckets, e.count),
    p95: 1000 * quantile(0.95, e.buckets, e.count),
    mean: (1000 * e.sum) / e.count,
  }));
  drawChart(rows);
  const body = $("latency-table").querySelector("tbody");
  body.innerHTML = "";
  for (const r of rows) {
    const tr = document.createElement("tr");
    tr.dataset.width = String(r.width);
    for (const v of [r.width, r.count, r.p50.toFixed(1), r.p95.toFixed(1), r.mean.toFixed(1)]) {
      const td = document.createElement("td");
      td.textContent = String(v);
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
}

// ------------------------------------------------------------------------------------ wiring

function wire() {
  const key = sessionStorage.getItem("gram-api-key");
  if (key) $("api-key").value = key;
  $("api-key").addEventListener("change", () => {
    sessionStorage.setItem("gram-api-key", $("api-key").value.trim());
    loadModels();
  });
  $("model").addEventListener("change", selectModel);
  $("reload-models").addEventListener("click", loadModels);
  $("sudoku-text").addEventListener("change", () => {
    const digits = $("sudoku-text").value.replace(/\s/g, "").replace(/0/g, ".");
    buildSudoku(state.model.size, digits);
  });
  $("sudoku-example").addEventListener("click", () => buildSudoku(state.model.size, EXAMPLES[state.model.size] || ""));
  $("sudoku-clear").addEventListener("click", () => buildSudoku(state.model.size, ""));
  $("queens-clear").addEventListener("click", () => { state.queens.clear(); buildQueens(state.model.size); });
  $("graph-edges").addEventListener("input", parseGraph);
  $("graph-nodes").addEventListener("input", parseGraph);
  $("graph-example").addEventListener("click", () => {
    const size = state.model && GRAPH_EXAMPLES[state.model.size] ? state.model.size : 8;
    $("graph-nodes").value = size;
    $("graph-edges").value = GRAPH_EXAMPLES[size];
    parseGraph();
  });
  $("solve").addEventListener("click", () => run("solve"));
  $("generate").addEventListener("click", () => run("generate"));
  $("stop").addEventListener("click", () => state.abort && state.abort.abort());
  loadModels();
  refreshChart();
  setInterval(() => { if (!document.hidden) refreshChart(); }, 2000);
}

wire();
