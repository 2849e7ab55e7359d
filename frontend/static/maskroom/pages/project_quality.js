// The quality page: the annotators' table from GET /api/projects/{id}/quality/,
// two plots drawn by the vendored Chart.js (frontend/static/vendor/chartjs/,
// loaded before this module as window.Chart) and the least agreed images, each
// a link into its editor. The body's data-ready turns "true" once the plots are
// drawn (the browser test waits for it), "error" when the data did not load.

import { api, endpoints } from "../lib/api.js";
import { el, showError } from "../lib/dom.js";

const projectId = Number(document.body.dataset.projectId);
const errorNode = document.querySelector("#quality .error");
const BINS = 10; // the histogram's bins of mean F1: [0, 0.1), ..., [0.9, 1]
const COLORS = { consensus: "#2563eb", gold: "#f59e0b", images: "#10b981" };

const NUMBER_COLUMNS = [
  ["submitted", (v) => v],
  ["accepted", (v) => v],
  ["returned", (v) => v],
  ["instances", (v) => v],
  ["seconds_per_image", (v) => (v / 60).toFixed(1)],
  ["prompts_per_instance", (v) => v.toFixed(1)],
  ["f1_consensus", (v) => v.toFixed(2)],
  ["pq_consensus", (v) => v.toFixed(2)],
  ["f1_gold", (v) => v.toFixed(2)],
  ["pq_gold", (v) => v.toFixed(2)],
];

// A measured value formatted, or "—" where nothing was measured (null).
export function cell(value, format) {
  return value === null || value === undefined ? "—" : String(format(value));
}

// The number of images per bin of mean F1; images without one are left out.
export function histogram(images, bins = BINS) {
  const counts = new Array(bins).fill(0);
  for (const { mean_f1: f1 } of images) {
    if (f1 === null || f1 === undefined) continue;
    counts[Math.min(bins - 1, Math.floor(f1 * bins))] += 1;
  }
  return counts;
}

function showTable(annotators) {
  const body = document.querySelector("#annotators tbody");
  body.replaceChildren(
    ...annotators.map((row) =>
      el(
        "tr",
        { dataset: { username: row.username } },
        el("td", {}, row.username),
        ...NUMBER_COLUMNS.map(([key, format]) => el("td", {}, cell(row[key], format))),
      ),
    ),
  );
  document.getElementById("annotators-empty").hidden = annotators.length > 0;
}

function showImages(images) {
  const list = document.getElementById("images");
  list.replaceChildren(
    ...images.map((image) =>
      el(
        "li",
        {},
        el("a", { href: `/images/${image.image}/` }, image.name),
        ` — ${image.sets} sets, mean F1 ${cell(image.mean_f1, (v) => v.toFixed(2))}`,
        image.disputed ? `, ${image.disputed_clusters} disputed` : "",
      ),
    ),
  );
  document.getElementById("images-empty").hidden = images.length > 0;
}

function drawCharts(annotators, images) {
  const { Chart } = window;
  const options = { animation: false, scales: { y: { beginAtZero: true } } };
  const f1 = new Chart(document.getElementById("f1-chart"), {
    type: "bar",
    data: {
      labels: annotators.map((row) => row.username),
      datasets: [
        { label: "F1 vs consensus", data: annotators.map((r) => r.f1_consensus), backgroundColor: COLORS.consensus },
        { label: "F1 vs gold", data: annotators.map((r) => r.f1_gold), backgroundColor: COLORS.gold },
      ],
    },
    options: { ...options, scales: { y: { min: 0, max: 1 } } },
  });
  const labels = Array.from({ length: BINS }, (_, i) => `${(i / BINS).toFixed(1)}–${((i + 1) / BINS).toFixed(1)}`);
  const spread = new Chart(document.getElementById("agreement-chart"), {
    type: "bar",
    data: {
      labels,
      datasets: [{ label: "images", data: histogram(images), backgroundColor: COLORS.images }],
    },
    options: {
      ...options,
      plugins: { legend: { display: false } },
      scales: { x: { title: { display: true, text: "mean F1" } }, y: { beginAtZero: true, ticks: { precision: 0 } } },
    },
  });
  return [f1, spread];
}

// The annotator-by-annotator matrix as a heat map: a square per pair (both
// halves), coloured from red (F1 0) to green (F1 1).
export function matrixPoints(pairs) {
  const names = [...new Set(pairs.flatMap((p) => [p.a, p.b]))].sort();
  const points = pairs.flatMap((p) => [
    { x: p.a, y: p.b, f1: p.f1 },
    { x: p.b, y: p.a, f1: p.f1 },
  ]);
  return { names, points };
}

function heat(f1) {
  const hue = Math.round(120 * Math.max(0, Math.min(1, f1)));
  return `hsl(${hue}, 70%, 45%)`;
}

function drawPairs(pairs, throughput) {
  const { Chart } = window;
  const { names, points } = matrixPoints(pairs);
  const side = Math.max(6, Math.min(40, Math.floor(240 / Math.max(names.length, 1))));
  const matrix = new Chart(document.getElementById("pairs-chart"), {
    type: "scatter",
    data: {
      datasets: [
        {
          label: "mean F1",
          data: points,
          pointStyle: "rect",
          pointRadius: side / 2,
          pointHoverRadius: side / 2,
          backgroundColor: points.map((p) => heat(p.f1)),
        },
      ],
    },
    options: {
      animation: false,
      plugins: {
        legend: { display: false },
        tooltip: { callbacks: { label: (item) => `${item.raw.x} · ${item.raw.y}: F1 ${item.raw.f1.toFixed(2)}` } },
      },
      scales: {
        x: { type: "category", labels: names, offset: true },
        y: { type: "category", labels: names, offset: true },
      },
    },
  });
  const days = new Chart(document.getElementById("throughput-chart"), {
    type: "bar",
    data: {
      labels: throughput.map((d) => d.day),
      datasets: [{ label: "sets", data: throughput.map((d) => d.sets), backgroundColor: COLORS.images }],
    },
    options: { animation: false, plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
  });
  return [matrix, days];
}

async function load() {
  document.getElementById("quality-csv").href = endpoints.projectQualityCsv(projectId);
  try {
    const { annotators, images, pairs, throughput } = await api(endpoints.projectQuality(projectId));
    showTable(annotators);
    showImages(images);
    drawCharts(annotators, images);
    drawPairs(pairs, throughput);
    document.body.dataset.ready = "true";
  } catch (err) {
    showError(errorNode, err.message);
    document.body.dataset.ready = "error";
  }
}

load();
