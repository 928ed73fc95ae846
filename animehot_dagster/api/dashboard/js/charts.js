// Hand-written SVG charts of hourly rows. Each hour drawn is a <g class="hour" data-hour="…">
// holding its marks and a <title> with its figures, so a pointer, a screen reader and a test
// all read the same hours. Drawn at the container's width (text stays legible at 375 px).

import { s } from "./dom.js";
import { HOUR, clock, count, day, missing, price, ratio } from "./format.js";

const PAD = { left: 44, right: 12, top: 12, bottom: 30 };

export function niceMax(value) {
  if (!(value > 0)) return 1;
  const step = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * step >= value) return m * step;
  return 10 * step;
}

function jstHour(ms) {
  return (new Date(ms).getUTCHours() + 9) % 24;
}

/** Rows by the start (ms) of their hour. */
export function byHour(rows) {
  const out = new Map();
  for (const row of rows) out.set(new Date(row.hour_bucket).getTime(), row);
  return out;
}

function frame({ width, height, first, last, yMax, yFormat, label, describe }) {
  const hours = Math.round((last - first) / HOUR) + 1;
  const plotW = Math.max(10, width - PAD.left - PAD.right);
  const plotH = height - PAD.top - PAD.bottom;
  const slot = plotW / hours;
  const x = (ms) => PAD.left + ((ms - first) / HOUR) * slot;
  const y = (v) => PAD.top + plotH * (1 - v / yMax);
  const svg = s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label,
    class: "chart" }, s("desc", {}, describe));
  const grid = s("g", { class: "grid", "aria-hidden": "true" });
  for (const v of [0, yMax / 2, yMax]) {
    grid.append(s("line", { x1: PAD.left, x2: PAD.left + plotW, y1: y(v), y2: y(v) }),
      s("text", { x: PAD.left - 6, y: y(v) + 4, "text-anchor": "end" }, yFormat(v)));
  }
  const every = hours <= 30 ? (width < 500 ? 6 : 3) : 24;
  for (let ms = first; ms <= last; ms += HOUR) {
    if (jstHour(ms) % every) continue;
    const at = x(ms) + slot / 2;
    grid.append(s("line", { class: "tick", x1: at, x2: at, y1: PAD.top + plotH, y2: PAD.top + plotH + 4 }),
      s("text", { x: at, y: height - 10, "text-anchor": "middle" }, every === 24 ? day(ms) : clock(ms)));
  }
  svg.append(grid);
  return { svg, x, y, slot, plotH, hours };
}

function hourGroup(row, ms, text) {
  return s("g", { class: "hour", "data-hour": row.hour_bucket, "data-ms": ms }, s("title", {}, text));
}

function range(first, last) {
  const out = [];
  for (let ms = first; ms <= last; ms += HOUR) out.push(ms);
  return out;
}

/** Inflow and outflow bars per hour over [first, last] (hour starts, ms). */
export function flowChart({ rows, first, last, width, height = 220 }) {
  const hours = byHour(rows);
  const shown = range(first, last).filter((ms) => hours.has(ms));
  const top = Math.max(0, ...shown.map((ms) => Math.max(hours.get(ms).inflow, hours.get(ms).outflow)));
  const inflow = shown.reduce((sum, ms) => sum + hours.get(ms).inflow, 0);
  const outflow = shown.reduce((sum, ms) => sum + hours.get(ms).outflow, 0);
  const { svg, x, y, slot } = frame({ width, height, first, last, yMax: niceMax(top), yFormat: count,
    label: "Hourly inflow and outflow", describe: `${shown.length} hours with figures: inflow ${inflow}, outflow ${outflow} in all.` });
  const bars = s("g", { class: "bars" });
  const bar = Math.max(1, slot * 0.4);
  for (const ms of shown) {
    const row = hours.get(ms);
    const g = hourGroup(row, ms, `${day(ms)} ${clock(ms)} — inflow ${count(row.inflow)}, outflow ${count(row.outflow)}`);
    const left = x(ms) + slot * 0.1;
    g.append(s("rect", { class: "inflow", x: left, width: bar, y: y(row.inflow), height: Math.max(0, y(0) - y(row.inflow)) }),
      s("rect", { class: "outflow", x: left + bar, width: bar, y: y(row.outflow), height: Math.max(0, y(0) - y(row.outflow)) }),
      s("rect", { class: "hit", x: x(ms), width: slot, y: 0, height }));
    bars.append(g);
  }
  svg.append(bars);
  return svg;
}

/** The liquidity index (outflow / inflow) per hour, the line broken where it is undefined. */
export function liquidityChart({ rows, first, last, width, height = 170 }) {
  const hours = byHour(rows);
  const shown = range(first, last).filter((ms) => hours.has(ms) && !missing(hours.get(ms).liquidity_index));
  const top = Math.max(2, ...shown.map((ms) => hours.get(ms).liquidity_index));
  const { svg, x, y, slot } = frame({ width, height, first, last, yMax: niceMax(top), yFormat: (v) => v.toFixed(1),
    label: "Hourly liquidity index", describe: `${shown.length} hours with a liquidity index.` });
  svg.append(s("line", { class: "reference", x1: PAD.left, x2: width - PAD.right, y1: y(1), y2: y(1) }),
    s("text", { class: "reference-label", x: width - PAD.right, y: y(1) - 4, "text-anchor": "end" }, "1 = as many sold as listed"));
  let path = "";
  let previous = null;
  for (const ms of shown) {
    const px = x(ms) + slot / 2;
    path += `${previous !== null && ms - previous === HOUR ? "L" : "M"}${px.toFixed(1)},${y(hours.get(ms).liquidity_index).toFixed(1)}`;
    previous = ms;
  }
  svg.append(s("path", { class: "line", d: path }));
  const points = s("g", { class: "points" });
  for (const ms of shown) {
    const row = hours.get(ms);
    const g = hourGroup(row, ms, `${day(ms)} ${clock(ms)} — liquidity ${ratio(row.liquidity_index)}`);
    g.append(s("circle", { cx: x(ms) + slot / 2, cy: y(row.liquidity_index), r: slot > 8 ? 3 : 1.5 }));
    points.append(g);
  }
  svg.append(points);
  return svg;
}

/** Sold prices per hour: the range (min to max) and the median. */
export function priceChart({ rows, first, last, width, height = 170 }) {
  const hours = byHour(rows);
  const shown = range(first, last).filter((ms) => hours.has(ms) && !missing(hours.get(ms).median_price));
  const top = Math.max(0, ...shown.map((ms) => hours.get(ms).max_price ?? hours.get(ms).median_price));
  const { svg, x, y, slot } = frame({ width, height, first, last, yMax: niceMax(top),
    yFormat: (v) => (v >= 1000 ? `¥${v / 1000}k` : `¥${v}`),
    label: "Sold prices per hour", describe: `${shown.length} hours with sales: price range and median.` });
  const marks = s("g", { class: "prices" });
  for (const ms of shown) {
    const row = hours.get(ms);
    const cx = x(ms) + slot / 2;
    const g = hourGroup(row, ms, `${day(ms)} ${clock(ms)} — median ${price(row.median_price)}, ` +
      `${price(row.min_price)} to ${price(row.max_price)}, ${count(row.sample_count)} sold`);
    if (!missing(row.min_price) && !missing(row.max_price)) {
      g.append(s("line", { class: "range", x1: cx, x2: cx, y1: y(row.min_price), y2: y(row.max_price) }));
    }
    g.append(s("circle", { class: "median", cx, cy: y(row.median_price), r: slot > 8 ? 3 : 1.5 }));
    marks.append(g);
  }
  svg.append(marks);
  return svg;
}

/** A small line of the last ``hours`` hours ending at ``last``: outflow solid, inflow faint. */
export function sparkline({ rows, last, hours = 24, width = 120, height = 32 }) {
  const byMs = byHour(rows);
  const first = last - (hours - 1) * HOUR;
  const values = range(first, last).map((ms) => byMs.get(ms));
  const top = niceMax(Math.max(1, ...values.filter(Boolean).map((r) => Math.max(r.inflow, r.outflow))));
  const px = (i) => 2 + (i * (width - 4)) / (hours - 1);
  const py = (v) => 2 + (height - 4) * (1 - v / top);
  const line = (field) => {
    let d = "";
    values.forEach((row, i) => {
      if (!row) return;
      d += `${i && values[i - 1] ? "L" : "M"}${px(i).toFixed(1)},${py(row[field]).toFixed(1)}`;
    });
    return d;
  };
  const present = values.filter(Boolean);
  const inflow = present.reduce((sum, r) => sum + r.inflow, 0);
  const outflow = present.reduce((sum, r) => sum + r.outflow, 0);
  return s("svg", { class: "spark", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `last 24 hours: ${present.length} hours with figures, inflow ${inflow}, outflow ${outflow}`,
    "data-hours": present.length },
  s("path", { class: "inflow", d: line("inflow") }), s("path", { class: "outflow", d: line("outflow") }));
}
