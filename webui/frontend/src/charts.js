// Dashboards: each <table class="chart" data-chart="bar|line|doughnut" data-series="A,B"> becomes a
// chart drawn above it. The table stays (inside a <details>) for screen readers and for numbers;
// clicking a bar, point or slice opens the list behind it (the link in the row's first cell).
import {
  ArcElement, BarController, BarElement, CategoryScale, Chart, DoughnutController, Legend,
  LinearScale, LineController, LineElement, PointElement, Tooltip,
} from "chart.js";

Chart.register(ArcElement, BarController, BarElement, CategoryScale, DoughnutController, Legend,
  LinearScale, LineController, LineElement, PointElement, Tooltip);

const PALETTE = ["#1f5fa8", "#c2571a", "#2e7d32", "#8e24aa", "#00838f", "#6d4c41"];

for (const table of document.querySelectorAll("table.chart[data-chart]")) draw(table);

function draw(table) {
  const rows = [...table.tBodies[0]?.rows ?? []];
  if (!rows.length) return;
  const rowLabels = rows.map((row) => row.cells[0].textContent.trim());
  const rowLinks = rows.map((row) => row.cells[0].querySelector("a")?.href ?? null);
  const columnNames = (table.dataset.series || "Value").split(",").map((name) => name.trim());
  const kind = table.dataset.chart;
  // an empty cell is "no value" (a month with nothing closed), not zero
  const value = (row, i) => {
    const text = row.cells[i + 1]?.textContent.trim() ?? "";
    return text === "" ? null : Number(text.replace(/[^\d.-]/g, ""));
  };
  // data-transpose: the columns are the x axis (periods of a trend) and each row is one line
  const transpose = table.hasAttribute("data-transpose");
  const labels = transpose ? columnNames : rowLabels;
  const names = transpose ? rowLabels : columnNames;
  const links = transpose ? columnNames.map(() => null) : rowLinks;
  const datasets = names.map((name, i) => ({
    label: name,
    data: transpose ? columnNames.map((_c, j) => value(rows[i], j)) : rows.map((row) => value(row, i)),
    spanGaps: true,
    backgroundColor: kind === "doughnut" ? PALETTE : PALETTE[i % PALETTE.length],
    borderColor: PALETTE[i % PALETTE.length],
  }));
  // data-units (e.g. "hours,hours") says when the series share one unit and so one axis
  const units = (table.dataset.units || "").split(",");
  const twoUnits = names.length > 1 && kind !== "doughnut" && !(units.length > 1 && units.every((u) => u === units[0]));
  // a second series of another unit (minutes beside counts, hours beside counts) gets its own axis
  if (twoUnits) datasets[1].yAxisID = "y1";

  const figure = document.createElement("figure");
  figure.className = "chart-figure";
  const holder = document.createElement("div");
  holder.className = "chart-canvas";
  const canvas = document.createElement("canvas");
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", table.caption?.textContent.trim() || "chart");
  holder.append(canvas);
  const caption = document.createElement("figcaption");
  caption.textContent = table.caption?.textContent.trim() || "";
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  summary.textContent = "Numbers";
  table.replaceWith(figure);
  details.append(summary, table);
  figure.append(caption, holder, details);

  new Chart(canvas, {
    type: kind,
    data: { labels, datasets },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      plugins: { legend: { display: names.length > 1 || kind === "doughnut" } },
      scales: kind === "doughnut" ? {} : {
        y: { beginAtZero: true, ticks: { precision: 0 }, title: { display: twoUnits, text: names[0] } },
        ...(twoUnits ? { y1: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false },
                                title: { display: true, text: names[1] } } } : {}),
      },
      onHover: (event, elements) => {
        event.native.target.classList.toggle("clickable", elements.length > 0);
      },
      onClick: (_event, elements) => {
        const link = !elements.length ? null : transpose ? rowLinks[elements[0].datasetIndex] : links[elements[0].index];
        if (link) window.location.assign(link);
      },
    },
  });
  table.dataset.charted = "true";
}
