// The page of nmt-serve: translate as you type, read the attention, look inside a char-rnn.
// Everything the server or the user wrote is put into the page as text (textContent), never as
// markup; the page loads nothing but this file and style.css from its own server.
"use strict";

const $ = (id) => document.getElementById(id);

/** An element with a class and a text, built without markup. */
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function showStatus(text, isError) {
  const s = $("status");
  s.textContent = text;
  s.classList.toggle("error", Boolean(isError));
}

/** POST or GET JSON; an answer that is not 2xx throws with the server's message. */
async function call(path, body, signal) {
  const init = body === undefined ? { signal } : {
    method: "POST", body: JSON.stringify(body), signal, headers: { "content-type": "application/json" },
  };
  const r = await fetch(path, init);
  const data = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
  if (!r.ok) throw new Error(data.error || `HTTP ${r.status}`);
  return data;
}

/** A SentencePiece piece as a person reads it: a word's first piece as it is, a piece inside a
 * word after a dot ("▁station" -> "station", "s" -> "·s"); "</s>" and "<unk>" as they are. */
function readable(piece) {
  if (piece.startsWith("\u2581")) return piece.length > 1 ? piece.slice(1) : "\u2423";
  return /^<.*>$/.test(piece) ? piece : "\u00b7" + piece;
}

// ------------------------------------------------------------------------------------ views

function showView(name) {
  for (const tab of document.querySelectorAll(".tab")) {
    tab.setAttribute("aria-pressed", String(tab.dataset.view === name));
  }
  $("view-translate").hidden = name !== "translate";
  $("view-charrnn").hidden = name !== "charrnn";
}

// -------------------------------------------------------------------------------- translate

const state = { models: [], results: [], selected: 0, seq: 0, controller: null, timer: null };

function settings() {
  const beam = Math.max(1, Math.min(16, parseInt($("beam").value, 10) || 1));
  const nbest = Math.max(1, Math.min(beam, parseInt($("nbest").value, 10) || 1));
  const alpha = Math.max(0, Math.min(5, parseFloat($("alpha").value) || 0));
  return { id: parseInt($("model").value, 10), beam_size: beam, n_best: nbest, alpha };
}

const MAX_TERMS = 16; // the server's limit per sentence

/** The glossary's entries, "source words = target term" a line, each with a pattern that finds
 * its source words in a line as whole words, in any case. */
function glossary() {
  const entries = [];
  for (const raw of $("glossary").value.split("\n")) {
    const at = raw.indexOf("=");
    if (at < 0) continue;
    const source = raw.slice(0, at).trim();
    const term = raw.slice(at + 1).trim();
    if (source === "" || term === "") continue;
    const escaped = source.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/\s+/g, "\\s+");
    entries.push({ term, pattern: new RegExp(`(?<![\\p{L}\\p{N}])${escaped}(?![\\p{L}\\p{N}])`, "iu") });
  }
  return entries;
}

/** The target terms a line must contain: those of the glossary entries whose source words it has. */
function termsFor(text, entries) {
  const terms = [];
  for (const e of entries) {
    if (e.pattern.test(text) && !terms.includes(e.term)) terms.push(e.term);
  }
  return terms.slice(0, MAX_TERMS);
}

function scheduleTranslation() {
  clearTimeout(state.timer);
  state.timer = setTimeout(translate, 250); // debounced: one request when the typing pauses
}

async function translate() {
  const lines = $("source").value.split("\n").slice(0, 256);
  const rows = lines.map((text, line) => ({ text, line })).filter((r) => r.text.trim() !== "");
  if (state.controller) state.controller.abort(); // only the newest text matters
  const seq = ++state.seq;
  if (rows.length === 0 || state.models.length === 0) {
    state.results = [];
    render();
    showStatus("");
    return;
  }
  const s = settings();
  const entries = glossary();
  for (const r of rows) r.terms = termsFor(r.text, entries);
  const items = rows.map((r) => {
    const item = { id: s.id, src: r.text, beam_size: s.beam_size, alpha: s.alpha, n_best: s.n_best, attention: true };
    if (r.terms.length > 0) item.constraints = r.terms;
    return item;
  });
  state.controller = new AbortController();
  const started = performance.now();
  showStatus("translating\u2026");
  try {
    const ranks = await call("/translator/translate", items, state.controller.signal);
    if (seq !== state.seq) return; // a newer request is on its way
    state.results = rows.map((r, j) => ({
      line: r.line,
      terms: r.terms,
      first: ranks[0][j],
      nbest: ranks.map((rank) => rank[j]).filter((e, k) => k === 0 || e.pred_score !== null),
    }));
    state.selected = Math.min(state.selected, state.results.length - 1);
    render();
    const ms = Math.round(performance.now() - started);
    const search = s.beam_size > 1 ? `beam ${s.beam_size}, \u03b1 ${s.alpha}` : "greedy";
    showStatus(`${rows.length} line${rows.length > 1 ? "s" : ""} in ${ms} ms \u00b7 ${search} \u00b7 model ${s.id}`);
  } catch (e) {
    if (e.name === "AbortError" || seq !== state.seq) return;
    showStatus(`error: ${e.message}`, true);
  }
}

function render() {
  const list = $("results");
  list.replaceChildren();
  state.results.forEach((r, i) => {
    const item = el("li", "result" + (i === state.selected ? " selected" : ""));
    item.dataset.index = String(i);
    item.append(el("div", "src", r.first.src), el("div", "best", r.first.tgt));
    if (r.terms.length > 0) item.append(el("div", "terms", `terms: ${r.terms.join(", ")}`));
    if (r.nbest.length > 1) {
      const ol = el("ol", "nbest");
      for (const e of r.nbest) {
        const li = el("li", "", e.tgt);
        li.append(el("span", "score", e.pred_score === null ? "" : e.pred_score.toFixed(3)));
        ol.append(li);
      }
      item.append(ol);
    } else if (r.first.pred_score !== null) {
      item.append(el("div", "nbest", `score ${r.first.pred_score.toFixed(3)}`));
    }
    item.addEventListener("click", () => { state.selected = i; render(); });
    list.append(item);
  });
  drawAttention(state.results[state.selected]);
}

/** The attention of one line: source pieces across, target pieces down, a cell per pair. */
function drawAttention(result) {
  const panel = $("attention-panel");
  const holder = $("attention");
  holder.replaceChildren();
  if (!result || !result.first.attention || result.first.attention.length === 0) {
    panel.hidden = true;
    return;
  }
  panel.hidden = false;
  $("attention-title").textContent = `\u2014 line ${result.line + 1}`;
  const { src_pieces: src, tgt_pieces: tgt, attention: att, replaced } = result.first;
  const table = el("table", "att");
  const head = el("tr");
  head.append(el("th"));
  const columns = src.map((p) => {
    const th = el("th", "src-piece", readable(p));
    th.title = p;
    head.append(th);
    return th;
  });
  table.append(el("thead"));
  table.tHead.append(head);
  const body = el("tbody");
  tgt.forEach((piece, t) => {
    const row = el("tr");
    const copied = replaced && replaced[t] !== null && replaced[t] !== undefined;
    const label = el("th", "tgt-piece" + (copied ? " replaced" : ""), copied ? replaced[t] || "(dropped)" : readable(piece));
    label.title = copied ? `${piece}: unknown to the model; replace_unk copied the source word "${replaced[t]}"` : piece;
    row.append(label);
    att[t].forEach((w, s) => {
      const cell = el("td", "cell");
      cell.style.backgroundColor = `rgba(36, 87, 197, ${Math.min(1, w).toFixed(3)})`;
      cell.title = `${readable(piece)} \u2190 ${readable(src[s])}: ${w.toFixed(3)}`;
      row.append(cell);
    });
    row.addEventListener("mouseenter", () => light(columns, att[t]));
    row.addEventListener("mouseleave", () => light(columns, null));
    body.append(row);
  });
  table.append(body);
  holder.append(table);
}

/** Shade the source pieces by one target piece's attention (null: clear). */
function light(columns, weights) {
  columns.forEach((th, s) => {
    const w = weights ? weights[s] : 0;
    th.style.backgroundColor = weights ? `rgba(36, 87, 197, ${(0.85 * w).toFixed(3)})` : "";
    th.style.color = w > 0.5 ? "#fff" : "";
    th.classList.toggle("lit", weights !== null && w >= 0.2);
  });
}

async function loadModels() {
  try {
    state.models = await call("/translator/models");
  } catch (e) {
    state.models = [];
  }
  const select = $("model");
  select.replaceChildren();
  for (const m of state.models) {
    const name = m.checkpoints.map((c) => c.split("/").slice(-3).join("/")).join(" + ");
    const option = el("option", "", `${m.model_id} \u00b7 ${name}`);
    option.value = String(m.model_id);
    select.append(option);
  }
  if (state.models.length > 0) useModelSearch(state.models[0]);
  return state.models.length > 0;
}

function useModelSearch(model) {
  const s = model.search;
  $("beam").value = s.method === "beam" ? s.beam_size : 1;
  $("alpha").value = s.alpha;
  $("nbest").value = s.method === "beam" ? Math.max(s.nbest, Math.min(3, s.beam_size)) : 1; // a short n-best list to look at
}

// ---------------------------------------------------------------------------------- char-rnn

const lm = { info: null, seq: 0, timer: null };

async function loadLM() {
  try {
    lm.info = await call("/lm/info");
  } catch (e) {
    return false;
  }
  const i = lm.info;
  const bpc = i.valid_bpc === null || i.valid_bpc === undefined ? "" : `, ${i.valid_bpc.toFixed(3)} bits per character on its validation text`;
  $("lm-info").textContent = `${i.cell.toUpperCase()} language model, ${i.layers} \u00d7 ${i.units} cells, ${i.symbols} characters${bpc} (${i.checkpoint})`;
  const layer = $("layer");
  for (let k = 0; k < i.layers; k++) {
    const o = el("option", "", `${k + 1}${k === i.layers - 1 ? " (top)" : ""}`);
    o.value = String(k);
    layer.append(o);
  }
  layer.value = String(i.layers - 1);
  return true;
}

async function sampleText() {
  const body = {
    prime: $("prime").value,
    temperature: parseFloat($("temperature").value),
    length: Math.max(1, Math.min(2000, parseInt($("length").value, 10) || 1)),
    seed: Math.max(0, parseInt($("seed").value, 10) || 0),
  };
  const seq = ++lm.seq;
  showStatus("sampling\u2026");
  try {
    const got = await call("/lm/sample", body);
    if (seq !== lm.seq) return;
    const out = $("sampled");
    out.replaceChildren(el("span", "prime", got.prime), document.createTextNode(got.text.slice(got.prime.length)));
    showStatus(`${body.length} characters at temperature ${body.temperature.toFixed(2)}`);
    $("look-text").value = got.text.slice(0, 3000);
    await lookInside(null);
  } catch (e) {
    showStatus(`error: ${e.message}`, true);
  }
}

async function lookInside(unit) {
  const text = $("look-text").value;
  if (text.length < 2) return;
  showStatus("looking inside\u2026");
  try {
    const got = await call("/lm/look", { text, layer: parseInt($("layer").value, 10), unit });
    fillUnits(got);
    drawCells(got);
    showStatus(`layer ${got.layer + 1}, cell ${got.unit}: ${got.chars.length} characters`);
  } catch (e) {
    showStatus(`error: ${e.message}`, true);
  }
}

function fillUnits(got) {
  const select = $("unit");
  select.replaceChildren();
  for (const r of got.ranking) {
    const label = r.feature ? `cell ${r.unit} \u00b7 r = ${r.r >= 0 ? "+" : ""}${r.r.toFixed(2)} with ${r.feature.replace("_", " ")}` : `cell ${r.unit}`;
    const o = el("option", "", label);
    o.value = String(r.unit);
    select.append(o);
  }
  select.value = String(got.unit);
}

/** -1 blue, 0 white, +1 red (nmt-cells' colours). */
function activationColour(v) {
  const x = Math.max(-1, Math.min(1, v));
  const fade = Math.round(255 * (1 - Math.abs(x)));
  return x > 0 ? `rgb(255, ${fade}, ${fade})` : `rgb(${fade}, ${fade}, 255)`;
}

const shown = (c) => (c === "\n" ? "\u21b5" : c === " " ? "\u2423" : c === "\t" ? "\u21e5" : c);

/** Every character coloured by the cell, the five likeliest next characters under it. */
function drawCells(got) {
  const holder = $("cells");
  holder.replaceChildren();
  got.chars.forEach((c, t) => {
    const col = el("div", "col");
    const ch = el("span", "ch", shown(c));
    ch.style.backgroundColor = activationColour(got.activations[t]);
    if (Math.abs(got.activations[t]) > 0.6) ch.style.color = "#fff"; // legible on a strong colour
    ch.title = `${JSON.stringify(c)}: ${got.activations[t].toFixed(3)}`;
    col.append(ch);
    for (const [guess, p] of got.next[t]) {
      const g = el("span", "guess", shown(guess));
      g.style.backgroundColor = `rgba(36, 87, 197, ${(0.9 * p).toFixed(3)})`;
      if (p > 0.55) g.style.color = "#fff";
      g.title = `${JSON.stringify(guess)} next: p = ${p.toFixed(3)}`;
      col.append(g);
    }
    holder.append(col);
    if (c === "\n") holder.append(el("div", "linebreak"));
  });
}

// ------------------------------------------------------------------------------------ start

async function start() {
  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", () => showView(tab.dataset.view));
  }
  $("source").addEventListener("input", scheduleTranslation);
  $("glossary").addEventListener("input", scheduleTranslation);
  for (const id of ["beam", "alpha", "nbest"]) $(id).addEventListener("change", scheduleTranslation);
  $("model").addEventListener("change", () => {
    const m = state.models.find((x) => String(x.model_id) === $("model").value);
    if (m) useModelSearch(m);
    scheduleTranslation();
  });
  $("temperature").addEventListener("input", () => {
    $("temperature-value").textContent = parseFloat($("temperature").value).toFixed(2);
  });
  $("sample").addEventListener("click", sampleText);
  $("look").addEventListener("click", () => lookInside(null));
  $("layer").addEventListener("change", () => lookInside(null));
  $("unit").addEventListener("change", () => lookInside(parseInt($("unit").value, 10)));

  const [haveModels, haveLM] = await Promise.all([loadModels(), loadLM()]);
  $("tab-translate").hidden = !haveModels;
  $("tab-charrnn").hidden = !haveLM;
  showView(haveModels ? "translate" : "charrnn");
  if (!haveModels && !haveLM) showStatus("this server has no model to show", true);
  document.body.dataset.ready = "true"; // for the browser tests
  if ($("source").value.trim() !== "") scheduleTranslation();
}

document.addEventListener("DOMContentLoaded", start);
