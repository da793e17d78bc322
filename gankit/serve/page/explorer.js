// The explorer page: builds its controls from /api/models and redraws every generator's
// pictures from the same seed, sliders, truncation and class. Plain script, no build step;
// every request goes to the server that sent this page.
"use strict";

const SLIDER_RANGE = 3;   // slider ends, in standard deviations of the prior
const WALK_STEPS = 8;     // pictures in an interpolation row
const TARGET_WIDTH = 330; // about how wide a grid is drawn, in screen pixels (a panel's width)
const PADDING = 2;        // gankit's grids put 2 pixels around every tile

const state = { models: [], seed: 0, tiles: 16, psi: 1, cls: -1, shifts: [], picks: [] };
const $ = (id) => document.getElementById(id);

function columns(n) { return Math.min(n, Math.ceil(Math.sqrt(n))); }

function scaleFor(model, n, perRow) {
  const width = perRow * (model.image_shape[2] + PADDING) + PADDING;
  return Math.max(1, Math.min(8, Math.round(TARGET_WIDTH / width)));
}

function query(index, model, extra) {
  const shifts = state.shifts.slice(0, model.directions.count);
  const params = new URLSearchParams({ model: index, seed: state.seed, n: state.tiles, psi: state.psi,
                                       class: model.num_classes ? state.cls : -1, d: shifts.join(",") });
  for (const [key, value] of Object.entries(extra)) params.set(key, value);
  return params.toString();
}

function gridURL(index, model) {
  return "/api/grid.png?" + query(index, model, { scale: scaleFor(model, state.tiles, columns(state.tiles)) });
}

function walkURL(index, model) {
  const [a, b] = state.picks;
  // Drawn at the grid's scale and shown at the panel's width: a row of 8 stays legible.
  return "/api/interpolation.png?" + query(index, model, { a, b, steps: WALK_STEPS,
                                                           scale: scaleFor(model, state.tiles, columns(state.tiles)) });
}

// An image that failed to load: fetch the same URL once more to show the server's sentence.
function showFailure(panel, url) {
  fetch(url).then((r) => r.text()).then((text) => { panel.querySelector(".error").textContent = text; });
}

function panelFor(index, model) {
  const panel = document.createElement("section");
  panel.className = "panel";
  panel.dataset.model = index;
  const title = document.createElement("h2");
  title.textContent = model.name;
  panel.appendChild(title);
  const meta = document.createElement("p");
  meta.className = "meta";
  const error = document.createElement("p");
  error.className = "error";
  if (!model.loaded) {
    panel.classList.add("failed");
    error.textContent = "failed to load: " + model.error;
    panel.appendChild(error);
    return panel;
  }
  const classes = model.num_classes ? `${model.num_classes} classes` : "unconditional";
  meta.textContent = `${model.arch} on ${model.dataset}, step ${model.step}${model.ema ? ", EMA" : ""}, ${classes}; ` +
                     `z: ${model.latent_dim}-d ${model.latent_dist}; directions from ${model.directions.method}`;
  const grid = document.createElement("img");
  grid.className = "grid";
  grid.alt = `samples of ${model.name}`;
  grid.addEventListener("click", (event) => pickTile(event, model));
  grid.addEventListener("error", () => showFailure(panel, grid.src));
  grid.addEventListener("load", () => { error.textContent = ""; });
  const download = document.createElement("a");
  download.className = "download";
  download.textContent = "download PNG";
  const walk = document.createElement("img");
  walk.className = "interpolation";
  walk.hidden = true;
  walk.alt = `interpolation of ${model.name}`;
  walk.addEventListener("error", () => showFailure(panel, walk.src));
  panel.append(meta, grid, download, walk, error);
  return panel;
}

function pickTile(event, model) {
  const img = event.currentTarget;
  const scale = img.naturalWidth / img.clientWidth;
  const factor = scaleFor(model, state.tiles, columns(state.tiles));
  const x = (event.offsetX * scale) / factor - PADDING, y = (event.offsetY * scale) / factor - PADDING;
  const [, h, w] = model.image_shape;
  const col = Math.floor(x / (w + PADDING)), row = Math.floor(y / (h + PADDING));
  const cols = columns(state.tiles);
  if (col < 0 || col >= cols || row < 0) return;
  const tile = row * cols + col;
  if (tile >= state.tiles) return;
  state.picks = state.picks.length === 1 ? [state.picks[0], tile] : [tile];
  $("pick-note").textContent = state.picks.length === 1
    ? `from tile ${tile + 1}: now click the tile to walk to`
    : `from tile ${state.picks[0] + 1} to tile ${tile + 1} (click a tile to start again)`;
  draw();
}

function draw() {
  state.models.forEach((model, index) => {
    if (!model.loaded) return;
    const panel = document.querySelector(`.panel[data-model="${index}"]`);
    const url = gridURL(index, model);
    panel.querySelector("img.grid").src = url;
    const download = panel.querySelector("a.download");
    download.href = url + "&download=1";
    download.download = `gankit-${index}-seed${state.seed}.png`;
    const walk = panel.querySelector("img.interpolation");
    walk.hidden = state.picks.length !== 2;
    if (!walk.hidden) walk.src = walkURL(index, model);
  });
}

let pending = null;
function redrawSoon() { // sliders fire many events: draw at most every 80 ms
  if (pending === null) pending = setTimeout(() => { pending = null; draw(); }, 80);
}

function buildSliders() {
  const loaded = state.models.filter((m) => m.loaded);
  const count = Math.max(...loaded.map((m) => m.directions.count));
  const first = loaded[0];
  state.shifts = new Array(count).fill(0);
  const box = $("sliders");
  for (let k = 0; k < count; k++) {
    const row = document.createElement("label");
    row.className = "slider";
    const share = first.directions.explained[k];
    row.title = share === undefined ? "" : `${(100 * share).toFixed(1)}% of the first layer's variance in ${first.name}`;
    const input = document.createElement("input");
    Object.assign(input, { type: "range", min: -SLIDER_RANGE, max: SLIDER_RANGE, step: 0.1, value: 0 });
    input.dataset.direction = k;
    const shown = document.createElement("output");
    shown.textContent = "0.0";
    input.addEventListener("input", () => {
      state.shifts[k] = Number(input.value);
      shown.textContent = Number(input.value).toFixed(1);
      redrawSoon();
    });
    row.append(`dir. ${k + 1}`, input, shown);
    box.appendChild(row);
  }
  const methods = [...new Set(loaded.map((m) => m.directions.method))];
  $("directions-note").textContent = `Each slider moves z along one principal direction (PCA of ` +
    `${methods.join(" / ")}), in standard deviations of the prior.`;
}

function buildClassPicker() {
  const classes = Math.max(0, ...state.models.filter((m) => m.loaded).map((m) => m.num_classes));
  if (!classes) return;
  $("class-label").hidden = false;
  for (let k = 0; k < classes; k++) {
    const option = document.createElement("option");
    option.value = k;
    option.textContent = `class ${k}`;
    $("class").appendChild(option);
  }
}

function wireControls() {
  $("seed").addEventListener("change", () => { state.seed = Math.max(0, Math.floor(Number($("seed").value) || 0)); draw(); });
  $("new-seed").addEventListener("click", () => {
    state.seed = Math.floor(Math.random() * 1e9);
    $("seed").value = state.seed;
    draw();
  });
  $("tiles").addEventListener("change", () => { state.tiles = Number($("tiles").value); state.picks = []; draw(); });
  $("psi").addEventListener("input", () => {
    state.psi = Number($("psi").value);
    $("psi-value").textContent = state.psi.toFixed(2);
    redrawSoon();
  });
  $("class").addEventListener("change", () => { state.cls = Number($("class").value); draw(); });
  $("reset").addEventListener("click", () => {
    state.shifts.fill(0);
    document.querySelectorAll("#sliders input").forEach((input) => { input.value = 0; input.nextSibling.textContent = "0.0"; });
    draw();
  });
}

async function start() {
  const answer = await fetch("/api/models");
  state.models = (await answer.json()).models;
  const panels = $("panels");
  panels.textContent = "";
  state.models.forEach((model, index) => panels.appendChild(panelFor(index, model)));
  buildSliders();
  buildClassPicker();
  wireControls();
  draw();
}

start();
