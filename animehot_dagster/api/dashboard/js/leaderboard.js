// Leaderboard: hot / inflow / outflow × 2 h / 24 h / 7 d, with each IP's last 24 hours.
// Requests: /health (the server's time), the leaderboard, then one hourly series per IP in parallel.

import { get, health, settle } from "./api.js";
import { sparkline } from "./charts.js";
import { h, replace } from "./dom.js";
import { HOUR, QUALITY_HELP, QUALITY_TEXT, WINDOWS, count, dateTime, hourStart, ratio, worstQuality } from "./format.js";

const TYPES = [
  { type: "hot", label: "Hot", help: "hot score H = (outflow+1)/(inflow+1) × ln(outflow+1)" },
  { type: "inflow", label: "Inflow", help: "new listings" },
  { type: "outflow", label: "Outflow", help: "items sold" },
];
const SOURCES = {
  hourly: "the last complete hours",
  daily: "yesterday in Japan time, from the daily rollup",
  weekly: "the last complete week (Monday to Sunday), from the weekly rollup",
};

function choice(value, options, fallback) {
  return options.includes(value) ? value : fallback;
}

export function qualityBadge(quality) {
  if (!quality) return h("span", { class: "quality none", title: "no figures in the last 24 hours" }, "—");
  return h("span", { class: `quality ${quality}`, title: QUALITY_HELP[quality] }, QUALITY_TEXT[quality]);
}

function segmented(label, options, current, href) {
  return h("div", { class: "segmented", role: "group", "aria-label": label },
    h("span", { class: "segmented-label", "aria-hidden": "true" }, label),
    options.map((o) => h("a", { href: href(o.value), "aria-current": o.value === current ? "true" : null,
      title: o.help || null }, o.label)));
}

export async function renderLeaderboard(main, ctx) {
  const type = choice(ctx.params.get("type"), TYPES.map((t) => t.type), "hot");
  const hours = Number(choice(ctx.params.get("hours"), WINDOWS.map((w) => String(w.hours)), "24"));
  const limit = Math.min(100, Math.max(1, Number(ctx.params.get("limit")) || 10));
  document.title = `Leaderboard · ${type} · ${WINDOWS.find((w) => w.hours === hours).label} — Anime Hot`;
  const here = (changes) => ctx.link("/leaderboard", { type, hours, limit: limit === 10 ? null : limit, ...changes });
  const [board, now] = await Promise.all([
    get("/api/v1/leaderboard", { type, hours, limit }),
    health().then((body) => body.time, () => new Date().toISOString()),
  ]);
  if (!ctx.current()) return;
  const lastHour = hourStart(now) - HOUR;
  const table = h("table", { class: "board" },
    h("caption", {}, `Top ${board.count} by ${TYPES.find((t) => t.type === type).label.toLowerCase()}, `,
      `${dateTime(board.time_range.start)} – ${dateTime(board.time_range.end)} JST (${SOURCES[board.source] || board.source})`),
    h("thead", {}, h("tr", {},
      h("th", { scope: "col", class: "num" }, "Rank"),
      h("th", { scope: "col" }, "IP"),
      h("th", { scope: "col", class: "num" }, "Inflow"),
      h("th", { scope: "col", class: "num" }, "Outflow"),
      h("th", { scope: "col", class: "num" }, "Liquidity"),
      h("th", { scope: "col", class: "num" }, "Score"),
      h("th", { scope: "col" }, "Last 24 h"),
      h("th", { scope: "col" }, "Figures"))));
  const body = h("tbody");
  const sparks = [];
  for (const item of board.items) {
    const spark = h("td", { class: "spark-cell", "data-label": "Last 24 h" }, h("span", { class: "pending" }, "…"));
    const quality = h("td", { "data-label": "Figures" }, "…");
    sparks.push({ item, spark, quality });
    body.append(h("tr", { "data-ip": item.ip_id },
      h("td", { class: "num rank", "data-label": "Rank" }, item.rank),
      h("th", { scope: "row", class: "ip" },
        h("a", { href: ctx.link(`/ip/${item.ip_id}`, { hours: hours === 168 ? 168 : 24 }) },
          h("span", { lang: "ja", class: "name-ja" }, item.ip_name)),
        item.ip_name_en ? h("span", { class: "name-en" }, item.ip_name_en) : null),
      h("td", { class: "num", "data-label": "Inflow" }, count(item.inflow)),
      h("td", { class: "num", "data-label": "Outflow" }, count(item.outflow)),
      h("td", { class: "num", "data-label": "Liquidity" }, ratio(item.liquidity_index)),
      h("td", { class: "num score", "data-label": "Score" }, type === "hot" ? ratio(item.score) : count(item.score)),
      spark, quality));
  }
  table.append(body);
  replace(main,
    h("h1", { tabindex: "-1" }, "Leaderboard"),
    h("p", { class: "lede" }, "Which anime IPs sell fastest on Mercari Japan: new listings (inflow), sales (outflow), ",
      "their ratio (liquidity) and the hot score."),
    h("div", { class: "controls" },
      segmented("Ranking", TYPES.map((t) => ({ value: t.type, label: t.label, help: t.help })), type, (v) => here({ type: v })),
      segmented("Window", WINDOWS.map((w) => ({ value: w.hours, label: w.label })), hours, (v) => here({ hours: v }))),
    board.items.length ? h("div", { class: "table-wrap" }, table)
      : h("p", { class: "empty" }, "No figures in this window yet."),
    h("p", { class: "legend" }, h("span", { class: "key outflow" }), "outflow ", h("span", { class: "key inflow" }),
      "inflow, per hour over the last 24 hours; figures: how the hours were measured (the least exact of them)."));
  const series = await Promise.all(sparks.map(({ item }) =>
    settle(get(`/api/v1/ips/${item.ip_id}/stats/hourly`, { limit: 24 }))));
  if (!ctx.current()) return;
  series.forEach((answer, i) => {
    const { spark, quality } = sparks[i];
    if (answer.error) {
      replace(spark, h("span", { class: "error" }, "unavailable"));
      replace(quality, "—");
      return;
    }
    const rows = answer.value.stats;
    replace(spark, sparkline({ rows, last: lastHour }));
    replace(quality, qualityBadge(worstQuality(rows)));
  });
}
