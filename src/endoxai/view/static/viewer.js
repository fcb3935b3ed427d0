// endoxai view: the page's logic. No framework, no build step, nothing fetched from elsewhere.
"use strict";

const $ = (selector) => document.querySelector(selector);
const CLIENT = Math.random().toString(36).slice(2) + Date.now().toString(36);
const DRAG_MIN_PX = 4;  // a pointer that moved less than this is a click, not a box

const state = {
  info: null,
  image: null,        // details of the current image
  target: { kind: "mask" },
  seq: 0,             // number of the latest relevance request; older answers are ignored
  controller: null,   // aborts the request in flight when a newer one starts
  drag: null,
};

class ApiError extends Error {}

async function api(path, options = {}) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (_) { /* not JSON: reported below */ }
  if (!response.ok || body === null || body.error) {
    const reason = body && body.error ? body.error : `${response.status} ${response.statusText}`;
    throw new ApiError(reason);
  }
  return body;
}

function showError(message) {
  const box = $("#error");
  box.textContent = message;
  box.hidden = false;
}

function clearError() { $("#error").hidden = true; }

function fmt(value, digits = 3) {
  if (value === null || value === undefined) return "–";
  if (value !== 0 && (Math.abs(value) < 1e-3 || Math.abs(value) >= 1e4)) return value.toExponential(2);
  return Number(value.toPrecision(digits)).toString();
}

function describeTarget(t) {
  if (t.kind === "pixel") return `pixel (row ${t.y}, column ${t.x})`;
  if (t.kind === "box") return `box rows ${t.y0}–${t.y1 - 1}, columns ${t.x0}–${t.x1 - 1}`;
  return t.kind === "mask" ? "whole predicted mask" : "background";
}

// ---------------------------------------------------------------- gallery and upload

async function loadGallery(selectId) {
  const { images } = await api("/api/images");
  const list = $("#gallery");
  list.replaceChildren();
  for (const image of images) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.id = image.id;
    const thumb = document.createElement("img");
    thumb.loading = "lazy";
    thumb.alt = "";
    thumb.src = `/api/images/${encodeURIComponent(image.id)}/thumb.png`;
    const text = document.createElement("span");
    text.className = "name";
    text.textContent = image.name;
    const dice = document.createElement("span");
    dice.className = "dice";
    dice.textContent = image.dice === null ? (image.uploaded ? "uploaded" : "no truth mask")
      : `Dice ${image.dice.toFixed(3)}`;
    text.append(dice);
    button.append(thumb, text);
    button.addEventListener("click", () => selectImage(image.id));
    item.append(button);
    list.append(item);
  }
  const scored = images.filter((i) => i.dice !== null).length;
  $("#gallery-note").textContent = images.length === 0 ? "No images yet: upload some."
    : `${images.length} image(s)` + (scored ? `, worst Dice first (${scored} with a truth mask)` : "");
  const first = selectId || (state.image ? state.image.id : images.length ? images[0].id : null);
  if (first && (!state.image || first !== state.image.id)) await selectImage(first);
}

async function upload(files) {
  let last = null;
  for (const file of files) {
    if (file.size > state.info.max_upload_bytes) {
      showError(`${file.name}: the file is ${(file.size / 2 ** 20).toFixed(1)} MB; uploads are ` +
                `limited to ${state.info.max_upload_bytes / 2 ** 20} MB`);
      continue;
    }
    try {
      const image = await api("/api/images", {
        method: "POST", body: file,
        headers: { "Content-Type": "application/octet-stream",
                   "X-Filename": encodeURIComponent(file.name) },
      });
      last = image.id;
      clearError();
    } catch (err) {
      showError(err instanceof ApiError ? err.message : `${file.name}: upload failed (${err})`);
    }
  }
  if (last) await loadGallery(last);
}

function setupUpload() {
  const zone = $("#upload");
  const input = zone.querySelector("input");
  input.addEventListener("change", () => { upload(Array.from(input.files)); input.value = ""; });
  // dropping a file anywhere must never make the browser navigate away to it
  for (const type of ["dragover", "drop"]) document.addEventListener(type, (e) => e.preventDefault());
  zone.addEventListener("dragover", () => zone.classList.add("over"));
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  document.addEventListener("drop", (e) => {
    zone.classList.remove("over");
    if (e.dataTransfer && e.dataTransfer.files.length) upload(Array.from(e.dataTransfer.files));
  });
  const mb = state.info.max_upload_bytes / 2 ** 20;
  const mp = state.info.max_upload_pixels / 1e6;
  $("#upload-limits").textContent = `at most ${mb} MB and ${mp} million pixels each`;
}

// ---------------------------------------------------------------- the current image

async function selectImage(id) {
  let image;
  try {
    image = await api(`/api/images/${encodeURIComponent(id)}`);
  } catch (err) {
    showError(err.message);
    return;
  }
  state.image = image;
  for (const button of document.querySelectorAll("#gallery button")) {
    button.classList.toggle("current", button.dataset.id === id);
  }
  const base = `/api/images/${encodeURIComponent(id)}`;
  const aspect = `${image.width} / ${image.height}`;
  for (const stage of [$("#image"), $("#relevance")]) stage.querySelector("img").style.aspectRatio = aspect;
  $("#image img").src = `${base}/picture.png`;
  $("#image .mask-layer").style.backgroundImage = `url("${base}/mask.png")`;
  $("#relevance").style.backgroundImage = `url("${base}/picture.png")`;
  $("#relevance img").removeAttribute("src");
  $("#hint").hidden = true;
  const legend = $("#legend");
  legend.replaceChildren();
  const swatches = image.has_truth
    ? [["tp", "true positive"], ["fp", "false positive"], ["fn", "false negative"]]
    : [["tp", "predicted mask"]];
  for (const [cls, label] of swatches) {
    const swatch = document.createElement("span");
    swatch.className = `swatch ${cls}`;
    legend.append(swatch, label);
  }
  $("#scores").textContent = (image.dice === null ? "no truth mask" :
    `Dice ${image.dice.toFixed(3)} · Jaccard ${image.jaccard.toFixed(3)} (at ${image.width}×${image.height})`) +
    ` · predicted ${(100 * image.predicted_share).toFixed(1)} % of the image`;
  state.target = { kind: "mask" };
  ask();
}

function modelPoint(event) {
  const img = $("#image img");
  const rect = img.getBoundingClientRect();
  const size = state.image.image_size;
  const fx = (event.clientX - rect.left) / rect.width;
  const fy = (event.clientY - rect.top) / rect.height;
  const clamp = (v) => Math.min(size - 1, Math.max(0, Math.floor(v * size)));
  return { x: clamp(fx), y: clamp(fy), px: event.clientX, py: event.clientY };
}

function placeFrame(frame, t) {
  const size = state.image.image_size;
  if (t.kind !== "pixel" && t.kind !== "box") { frame.hidden = true; return; }
  // a pixel gets a frame a few pixels wide around it, so the pixel itself stays visible
  const [y0, x0, y1, x1] = t.kind === "pixel"
    ? [t.y - 3, t.x - 3, t.y + 4, t.x + 4] : [t.y0, t.x0, t.y1, t.x1];
  frame.style.left = `${(100 * x0) / size}%`;
  frame.style.top = `${(100 * y0) / size}%`;
  frame.style.width = `${(100 * (x1 - x0)) / size}%`;
  frame.style.height = `${(100 * (y1 - y0)) / size}%`;
  frame.hidden = false;
}

function setupAsking() {
  const img = $("#image img");
  const drag = $("#image .drag");
  img.addEventListener("pointerdown", (e) => {
    if (!state.image || e.button !== 0) return;
    e.preventDefault();
    img.setPointerCapture(e.pointerId);
    state.drag = modelPoint(e);
  });
  img.addEventListener("pointermove", (e) => {
    if (!state.drag) return;
    const p = modelPoint(e);
    const moved = Math.hypot(p.px - state.drag.px, p.py - state.drag.py) >= DRAG_MIN_PX;
    if (!moved) { drag.hidden = true; return; }
    placeFrame(drag, boxOf(state.drag, p));
  });
  img.addEventListener("pointerup", (e) => {
    if (!state.drag) return;
    const start = state.drag;
    state.drag = null;
    drag.hidden = true;
    const p = modelPoint(e);
    const moved = Math.hypot(p.px - start.px, p.py - start.py) >= DRAG_MIN_PX;
    state.target = moved ? boxOf(start, p) : { kind: "pixel", y: start.y, x: start.x };
    ask();
  });
  img.addEventListener("pointercancel", () => { state.drag = null; drag.hidden = true; });
  $("#ask-mask").addEventListener("click", () => { state.target = { kind: "mask" }; ask(); });
  $("#ask-background").addEventListener("click", () => { state.target = { kind: "background" }; ask(); });
  $("#composite").addEventListener("change", () => ask());
  $("#opacity").addEventListener("input", setOpacity);
  setOpacity();
  const over = $("#relevance-over");
  over.addEventListener("change", () => $("#relevance").classList.toggle("over", over.checked));
}

function boxOf(a, b) {
  return { kind: "box", y0: Math.min(a.y, b.y), x0: Math.min(a.x, b.x),
           y1: Math.max(a.y, b.y) + 1, x1: Math.max(a.x, b.x) + 1 };
}

function setOpacity() {
  $("#image .mask-layer").style.opacity = String($("#opacity").value / 100);
}

// ---------------------------------------------------------------- relevance answers

async function ask() {
  if (!state.image) return;
  const seq = ++state.seq;
  if (state.controller) state.controller.abort();
  const controller = new AbortController();
  state.controller = controller;
  const target = state.target;
  const composite = $("#composite").value;
  $("#target-label").textContent = `Explaining: ${describeTarget(target)}`;
  placeFrame($("#image .frame"), target);
  $("#relevance").classList.add("busy");
  $("#timing").textContent = "computing…";
  const started = performance.now();
  let answer;
  try {
    answer = await api("/api/relevance", {
      method: "POST", signal: controller.signal,
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ image: state.image.id, composite, target, client: CLIENT, seq }),
    });
  } catch (err) {
    if (err.name === "AbortError" || seq !== state.seq) return;  // a newer question replaced it
    $("#relevance").classList.remove("busy");
    $("#timing").textContent = "";
    showError(err instanceof ApiError ? err.message : `no answer from the viewer (${err.message})`);
    return;
  }
  if (answer.superseded || seq !== state.seq) return;
  clearError();
  showAnswer(answer, target, composite, performance.now() - started);
}

function showAnswer(answer, target, composite, roundTripMs) {
  $("#relevance").classList.remove("busy");
  $("#relevance img").src = answer.input;
  placeFrame($("#relevance .frame"), target);
  const t = answer.totals;
  const empty = answer.target_pixels === 0 ? " — nothing to explain: the target is empty" : "";
  $("#relevance-label").textContent =
    `Input relevance (sum over RGB) of the ${describeTarget(target)}, ${composite}: ` +
    `red = for foreground, blue = against, white = 0; scale ±${fmt(answer.limit)}. ` +
    `ΣR input ${fmt(t.input)} of ${fmt(t.output)} at the output${empty}`;
  const s = answer.seconds;
  const server = s.forward + s.backward + s.render;
  $("#timing").textContent =
    `answer in ${server.toFixed(2)} s on the server (` +
    (answer.forward_cached ? "forward pass cached" : `forward ${s.forward.toFixed(2)} s`) +
    `, backward ${s.backward.toFixed(2)} s, images ${s.render.toFixed(2)} s) · ` +
    `${(roundTripMs / 1000).toFixed(2)} s with the round trip`;
  const stem = state.image.name.replace(/\.[^.]*$/, "");
  const png = $("#download-png");
  png.href = answer.input;
  png.download = `${stem}_relevance.png`;
  const npz = $("#download-npz");
  npz.href = `/api/results/${encodeURIComponent(answer.result)}.npz`;
  npz.download = `${stem}_relevance.npz`;
  showLayers(answer.layers);
  showFlow(answer.flow);
}

function showLayers(layers) {
  const list = $("#layers");
  list.replaceChildren();
  for (const layer of layers) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    const img = document.createElement("img");
    img.src = layer.png;
    img.alt = `relevance at ${layer.name}`;
    const name = document.createElement("span");
    name.className = "block";
    name.textContent = layer.name;
    const label = document.createElement("span");
    const [c, h, w] = layer.shape;
    label.textContent = `${c}×${h}×${w} · ΣR ${fmt(layer.total)}`;
    button.append(img, name, label);
    button.addEventListener("click", () => enlarge(layer));
    item.append(button);
    list.append(item);
  }
}

function enlarge(layer) {
  const dialog = $("#layer-large");
  dialog.querySelector("img").src = layer.png;
  dialog.querySelector("img").alt = `relevance at ${layer.name}`;
  const [c, h, w] = layer.shape;
  dialog.querySelector("figcaption").textContent =
    `${layer.name}: ${c} channels of ${h}×${w}, summed; scale ±${fmt(layer.limit)}, ΣR ${fmt(layer.total)}`;
  dialog.showModal();
}

function showFlow(flow) {
  const section = $("#flow");
  if (!flow || !Array.isArray(flow.rows) || !Array.isArray(flow.columns)) { section.hidden = true; return; }
  const head = document.createElement("tr");
  for (const column of flow.columns) {
    const th = document.createElement("th");
    th.textContent = column;
    head.append(th);
  }
  section.querySelector("thead").replaceChildren(head);
  const body = section.querySelector("tbody");
  body.replaceChildren();
  for (const row of flow.rows) {
    const tr = document.createElement("tr");
    for (const value of row) {
      const td = document.createElement("td");
      td.textContent = String(value);
      tr.append(td);
    }
    body.append(tr);
  }
  section.querySelector("p").textContent = flow.note || "";
  section.hidden = false;
}

// ---------------------------------------------------------------- start

async function start() {
  try {
    state.info = await api("/api/info");
  } catch (err) {
    showError(`the viewer does not answer: ${err.message}`);
    return;
  }
  $("#model").textContent = `model: ${state.info.model} (${state.info.image_size}×${state.info.image_size})`;
  const select = $("#composite");
  for (const [name, description] of Object.entries(state.info.composites)) {
    const option = document.createElement("option");
    option.value = name;
    option.textContent = name;
    option.title = description;
    select.append(option);
  }
  select.value = state.info.default_composite;
  $("#layer-close").addEventListener("click", () => $("#layer-large").close());
  setupUpload();
  setupAsking();
  try {
    await loadGallery(null);
  } catch (err) {
    showError(err.message);
  }
}

start();
