// genzoo serve's web page: the tabs the served model supports (GET /v1/models), each a client of the same HTTP API
// any program uses. Streaming reads the server-sent events of `stream: true` from fetch's body.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { key: localStorage.getItem("genzoo-api-key") || "", model: null, chat: [] };

const TABS = [  // capability -> tab
  ["completions", "complete", "Complete"],
  ["chat", "chat", "Chat"],
  ["embeddings", "embed", "Embeddings"],
  ["ner", "ner", "Entities"],
  ["images", "images", "Images"],
  ["classify", "classify", "Classify"],
  ["index", "search", "Search"],
];

function headers() {
  const h = { "Content-Type": "application/json" };
  if (state.key) h["Authorization"] = "Bearer " + state.key;
  return h;
}

function notice(text) {
  const n = $("notice");
  n.textContent = text || "";
  n.hidden = !text;
}

async function errorText(res) {
  try {
    const body = await res.json();
    return `${res.status}: ${(body.error && body.error.message) || JSON.stringify(body)}`;
  } catch (e) {
    return `${res.status} ${res.statusText}`;
  }
}

async function api(path, body) {
  const res = await fetch(path, { method: "POST", headers: headers(), body: JSON.stringify(body) });
  if (res.status === 401) showKeyForm();
  if (!res.ok) throw new Error(await errorText(res));
  return res.json();
}

// POST with stream: true; onChunk(parsed event) for each `data:` line until [DONE].
async function stream(path, body, onChunk, signal) {
  const res = await fetch(path, { method: "POST", headers: headers(), body: JSON.stringify({ ...body, stream: true }),
                                  signal });
  if (res.status === 401) showKeyForm();
  if (!res.ok) throw new Error(await errorText(res));
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") return;
        const parsed = JSON.parse(data);
        if (parsed.error) throw new Error(parsed.error.message);
        onChunk(parsed);
      }
    }
  }
}

function showKeyForm() {
  $("key-form").hidden = false;
  notice("This server needs an API key: enter it at the top right.");
}

function sampling() {
  const num = (id) => { const v = $(id).value; return v === "" ? null : Number(v); };
  const body = { max_tokens: num("max-tokens"), temperature: num("temperature"), top_p: num("top-p") };
  if (num("top-k")) body.top_k = num("top-k");
  if (num("repetition-penalty") !== 1) body.repetition_penalty = num("repetition-penalty");
  if (num("seed") !== null) body.seed = num("seed");
  const stop = $("stop").value;
  if (stop) body.stop = stop.split(",").map((s) => s.replace(/\\n/g, "\n")).filter((s) => s);
  return body;
}

// ---- tabs ------------------------------------------------------------------------------------------------
function selectTab(name) {
  for (const b of $("tabs").querySelectorAll("button")) b.setAttribute("aria-selected", String(b.dataset.tab === name));
  for (const s of document.querySelectorAll(".tab")) s.hidden = s.id !== "tab-" + name;
  const text = name === "complete" || name === "chat";
  $("controls").hidden = !text;
  $("main").classList.toggle("wide", !text);
}

async function loadModel() {
  const res = await fetch("/v1/models", { headers: headers() });
  if (res.status === 401) { showKeyForm(); $("model-info").textContent = "API key needed"; return; }
  if (!res.ok) { notice(await errorText(res)); return; }
  notice("");
  const model = (await res.json()).data[0];
  state.model = model;
  const info = model.genzoo || {};
  $("model-info").innerHTML = "";
  $("model-info").append(document.createTextNode(`${model.id} · ${info.kind || ""}`));
  for (const c of info.capabilities || []) {
    const b = document.createElement("span");
    b.className = "badge";
    b.textContent = c;
    $("model-info").append(b);
  }
  const tabs = $("tabs");
  tabs.innerHTML = "";
  const caps = info.capabilities || [];
  for (const [cap, name, label] of TABS) {
    if (!caps.includes(cap)) continue;
    const b = document.createElement("button");
    b.dataset.tab = name;
    b.id = "tabbtn-" + name;
    b.textContent = label;
    b.addEventListener("click", () => selectTab(name));
    tabs.append(b);
  }
  if (info.max_tokens) $("max-tokens").max = info.max_tokens;
  const first = tabs.querySelector("button");
  if (first) selectTab(first.dataset.tab);
}

// ---- complete ----------------------------------------------------------------------------------------------
let completeAbort = null;
async function complete() {
  const out = $("completion-output"), text = $("completion-text");
  const prompt = $("prompt").value;
  $("completion-prompt").textContent = prompt;
  text.textContent = "";
  out.dataset.chunks = "0";
  out.dataset.state = "running";
  $("generate").disabled = true;
  $("stop-complete").disabled = false;
  $("complete-status").textContent = "generating…";
  completeAbort = new AbortController();
  const t0 = performance.now();
  let finish = null;
  try {
    await stream("/v1/completions", { prompt, ...sampling() }, (chunk) => {
      const c = chunk.choices[0];
      if (!c) return;
      if (c.text) {
        text.textContent += c.text;
        out.dataset.chunks = String(Number(out.dataset.chunks) + 1);
        out.scrollTop = out.scrollHeight;
      }
      if (c.finish_reason) finish = c.finish_reason;
    }, completeAbort.signal);
    const s = (performance.now() - t0) / 1000;
    $("complete-status").textContent = `${finish || "done"} · ${out.dataset.chunks} pieces in ${s.toFixed(2)} s`;
    out.dataset.state = "done";
  } catch (e) {
    out.dataset.state = e.name === "AbortError" ? "stopped" : "error";
    $("complete-status").textContent = e.name === "AbortError" ? "stopped" : "";
    if (e.name !== "AbortError") notice(e.message);
  } finally {
    $("generate").disabled = false;
    $("stop-complete").disabled = true;
  }
}

// ---- chat --------------------------------------------------------------------------------------------------
let chatAbort = null;
function bubble(role, text) {
  const d = document.createElement("div");
  d.className = "msg " + role;
  d.textContent = text;
  $("chat-log").append(d);
  $("chat-log").scrollTop = $("chat-log").scrollHeight;
  return d;
}

async function sendChat() {
  const content = $("chat-message").value.trim();
  if (!content) return;
  $("chat-message").value = "";
  state.chat.push({ role: "user", content });
  bubble("user", content);
  const reply = bubble("assistant", "");
  const log = $("chat-log");
  log.dataset.state = "running";
  const messages = [...($("system").value ? [{ role: "system", content: $("system").value }] : []), ...state.chat];
  const body = { messages, ...sampling() };
  $("send").disabled = true;
  $("stop-chat").disabled = false;
  chatAbort = new AbortController();
  try {
    await stream("/v1/chat/completions", body, (chunk) => {
      const c = chunk.choices[0];
      if (c && c.delta && c.delta.content) {
        reply.textContent += c.delta.content;
        log.dataset.chunks = String(Number(log.dataset.chunks) + 1);
        log.scrollTop = log.scrollHeight;
      }
    }, chatAbort.signal);
    log.dataset.state = "done";
  } catch (e) {
    log.dataset.state = e.name === "AbortError" ? "stopped" : "error";
    if (e.name !== "AbortError") notice(e.message);
  } finally {
    state.chat.push({ role: "assistant", content: reply.textContent });
    $("send").disabled = false;
    $("stop-chat").disabled = true;
  }
}

// ---- embeddings --------------------------------------------------------------------------------------------
async function embed() {
  const texts = $("embed-texts").value.split("\n").map((t) => t.trim()).filter((t) => t);
  if (!texts.length) return;
  $("embed-status").textContent = "embedding…";
  try {
    const res = await api("/v1/embeddings", { input: texts });
    const vecs = res.data.map((d) => d.embedding);
    const unit = vecs.map((v) => { const n = Math.hypot(...v) || 1; return v.map((x) => x / n); });
    const table = document.createElement("table");
    const head = table.insertRow();
    head.append(document.createElement("th"));
    texts.forEach((t, j) => { const th = document.createElement("th"); th.textContent = `${j + 1}`; th.title = t; head.append(th); });
    unit.forEach((a, i) => {
      const row = table.insertRow();
      const th = document.createElement("th");
      th.textContent = `${i + 1}. ${texts[i]}`;
      th.title = texts[i];
      row.append(th);
      unit.forEach((b) => {
        const cos = a.reduce((s, x, k) => s + x * b[k], 0);
        const td = row.insertCell();
        td.textContent = cos.toFixed(3);
        const w = Math.max(0, Math.min(1, (cos + 1) / 2));
        td.style.background = `rgba(47, 111, 219, ${(w * w * 0.8).toFixed(3)})`;
      });
    });
    $("embed-result").replaceChildren(table);
    $("embed-status").textContent = `${vecs.length} × ${vecs[0].length}`;
  } catch (e) { notice(e.message); $("embed-status").textContent = ""; }
}

// ---- NER ---------------------------------------------------------------------------------------------------
const COLORS = ["#ffe08a", "#b5e3c4", "#c9d7ff", "#ffc9d9", "#d9c9ff", "#ffd6a5", "#c4f1f9"];
async function ner() {
  const text = $("ner-text").value;
  const labels = $("ner-labels").value.split(",").map((s) => s.trim()).filter((s) => s);
  $("ner-status").textContent = "reading…";
  try {
    const res = await api("/v1/ner", { text, labels, threshold: Number($("ner-threshold").value) });
    const out = $("ner-result");
    out.replaceChildren();
    let at = 0;
    for (const e of [...res.entities].sort((a, b) => a.start - b.start)) {
      if (e.start < at) continue;
      out.append(document.createTextNode(text.slice(at, e.start)));
      const m = document.createElement("mark");
      m.className = "ent";
      m.style.background = COLORS[Math.max(0, labels.indexOf(e.label)) % COLORS.length];
      m.title = `${e.label} ${e.score.toFixed(3)}`;
      m.textContent = text.slice(e.start, e.end);
      const tag = document.createElement("small");
      tag.textContent = e.label;
      m.append(tag);
      out.append(m);
      at = e.end;
    }
    out.append(document.createTextNode(text.slice(at)));
    $("ner-status").textContent = `${res.entities.length} entities`;
  } catch (e) { notice(e.message); $("ner-status").textContent = ""; }
}

// ---- images ------------------------------------------------------------------------------------------------
async function images() {
  const raw = $("image-labels").value.trim();
  const body = { steps: Number($("image-steps").value), guidance_scale: Number($("image-guidance").value) };
  if (raw) body.labels = raw.split(",").map((s) => Number(s.trim()));
  else body.n = Number($("image-n").value);
  if ($("image-seed").value !== "") body.seed = Number($("image-seed").value);
  $("images-status").textContent = "sampling…";
  try {
    const res = await api("/v1/images", body);
    const figs = res.data.map((d) => {
      const f = document.createElement("figure");
      const img = document.createElement("img");
      img.src = "data:image/png;base64," + d.b64_json;
      img.alt = d.label === null ? "sample" : `class ${d.label}`;
      const cap = document.createElement("figcaption");
      cap.textContent = d.label === null ? "" : `class ${d.label}`;
      f.append(img, cap);
      return f;
    });
    $("images-result").replaceChildren(...figs);
    $("images-status").textContent = `${figs.length} images`;
  } catch (e) { notice(e.message); $("images-status").textContent = ""; }
}

// ---- classify ----------------------------------------------------------------------------------------------
async function classify() {
  const file = $("classify-file").files[0];
  if (!file) { notice("Choose an image first."); return; }
  const dataUrl = await new Promise((ok, fail) => {
    const r = new FileReader(); r.onload = () => ok(r.result); r.onerror = fail; r.readAsDataURL(file);
  });
  $("classify-preview").src = dataUrl;
  const labels = $("classify-labels").value.split(",").map((s) => s.trim()).filter((s) => s);
  $("classify-status").textContent = "classifying…";
  try {
    const res = await api("/v1/classify", { image: dataUrl, labels, template: $("classify-template").value });
    const bars = res.labels.map((l) => {
      const row = document.createElement("div");
      row.className = "bar";
      const name = document.createElement("span"); name.textContent = l.label;
      const fill = document.createElement("div"); fill.className = "fill"; fill.style.width = `${(l.score * 100).toFixed(1)}%`;
      const v = document.createElement("span"); v.textContent = l.score.toFixed(3);
      row.append(name, fill, v);
      return row;
    });
    $("classify-result").replaceChildren(...bars);
    $("classify-status").textContent = "";
  } catch (e) { notice(e.message); $("classify-status").textContent = ""; }
}

// ---- search ------------------------------------------------------------------------------------------------
async function search() {
  const query = $("search-query").value.trim();
  if (!query) return;
  $("search-status").textContent = "searching…";
  try {
    const res = await api("/v1/index/query", { query, k: Number($("search-k").value) });
    const items = res.data[0].hits.map((h) => {
      const li = document.createElement("li");
      const meta = document.createElement("div"); meta.className = "meta";
      meta.textContent = `${h.id} #${h.chunk} · score ${h.score.toFixed(3)}`;
      const t = document.createElement("div"); t.textContent = h.text;
      li.append(meta, t);
      return li;
    });
    $("search-result").replaceChildren(...items);
    $("search-status").textContent = `${items.length} passages`;
  } catch (e) { notice(e.message); $("search-status").textContent = ""; }
}

// ---- wiring ------------------------------------------------------------------------------------------------
$("key-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  state.key = $("api-key").value.trim();
  localStorage.setItem("genzoo-api-key", state.key);
  $("key-form").hidden = true;
  loadModel();
});
$("generate").addEventListener("click", complete);
$("stop-complete").addEventListener("click", () => completeAbort && completeAbort.abort());
$("send").addEventListener("click", sendChat);
$("stop-chat").addEventListener("click", () => chatAbort && chatAbort.abort());
$("clear-chat").addEventListener("click", () => { state.chat = []; $("chat-log").replaceChildren(); });
$("chat-message").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); sendChat(); }
});
$("embed").addEventListener("click", embed);
$("ner").addEventListener("click", ner);
$("images").addEventListener("click", images);
$("classify").addEventListener("click", classify);
$("search").addEventListener("click", search);
$("search-query").addEventListener("keydown", (ev) => { if (ev.key === "Enter") search(); });
loadModel().catch((e) => notice(String(e)));
