// One IP: hourly inflow/outflow (24 h or 7 d), the liquidity line, sold prices, the cheapest and
// dearest item sold, the latest listings and sales, its alerts and its next crawl.
// Requests (in parallel): the IP, its hourly rows (168, enough for both windows), its latest
// hour, items on sale, items sold, its alerts, and the schedule (which also tells the server's time).

import { get, list, settle } from "./api.js";
import { alertTable } from "./alerts.js";
import { flowChart, liquidityChart, priceChart } from "./charts.js";
import { h, replace } from "./dom.js";
import {
  HOUR, QUALITY_HELP, QUALITY_TEXT, clock, count, dateTime, day, hourStart, missing, price, ratio, relative, worstQuality,
} from "./format.js";
import { qualityBadge } from "./leaderboard.js";

const ITEMS_SHOWN = 12;

function card(label, value, extra) {
  return h("div", { class: "card" }, h("div", { class: "card-label" }, label), h("div", { class: "card-value" }, value),
    extra ? h("div", { class: "card-extra" }, extra) : null);
}

function section(title, ...children) {
  const id = `s-${title.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
  return h("section", { class: "panel", "aria-labelledby": id }, h("h2", { id }, title), ...children);
}

function failed(answer, what) {
  return h("p", { class: "error", role: "alert" }, `${what} unavailable: ${answer.error.message}`);
}

function thumb(url, title) {
  if (!url) return h("div", { class: "thumb none", "aria-hidden": "true" });
  return h("img", { class: "thumb", src: url, alt: title, loading: "lazy", width: 96, height: 96,
    referrerpolicy: "no-referrer", onerror: (event) => event.target.classList.add("broken") });
}

/** A listing without a price (the seller set none) has price 0. */
function itemPrice(value) {
  return value > 0 ? price(value) : "no price";
}

function itemCard(item, when) {
  return h("li", { class: "item" },
    h("a", { href: item.item_url, rel: "noopener noreferrer", target: "_blank" },
      thumb(item.image_url, item.title),
      h("span", { class: "item-title", lang: "ja" }, item.title),
      h("span", { class: "item-price" }, itemPrice(item.price)),
      h("span", { class: "item-when" }, when)));
}

function priceItem(label, item) {
  if (!item) return h("div", { class: "price-item" }, h("div", { class: "card-label" }, label), "—");
  return h("div", { class: "price-item" }, h("div", { class: "card-label" }, label),
    h("a", { href: item.item_url, rel: "noopener noreferrer", target: "_blank" },
      thumb(item.image_url, item.title),
      h("span", { class: "item-price" }, price(item.price)),
      h("span", { class: "item-title", lang: "ja" }, item.title),
      h("span", { class: "item-when" }, "on Mercari ↗")));
}

/** The median of hourly medians weighted by each hour's sales (the API gives hourly medians only). */
function weightedMedian(rows) {
  const points = rows.filter((r) => !missing(r.median_price) && r.sample_count > 0)
    .map((r) => [r.median_price, r.sample_count]).sort((a, b) => a[0] - b[0]);
  const total = points.reduce((sum, [, w]) => sum + w, 0);
  let seen = 0;
  for (const [value, weight] of points) {
    seen += weight;
    if (seen * 2 >= total) return value;
  }
  return null;
}

function soldPrices(rows) {
  const sold = rows.filter((r) => !missing(r.min_price));
  if (!sold.length) return h("p", { class: "empty" }, "No sales with a price in this window.");
  const cheapest = sold.reduce((a, b) => (b.min_price < a.min_price ? b : a));
  const dearest = sold.reduce((a, b) => (b.max_price > a.max_price ? b : a));
  const samples = sold.reduce((sum, r) => sum + r.sample_count, 0);
  return h("div", { class: "prices-summary" },
    h("div", { class: "cards" },
      card("Median sold price", price(weightedMedian(sold)), "hourly medians, weighted by sales"),
      card("Range", `${price(cheapest.min_price)} – ${price(dearest.max_price)}`, `${count(samples)} priced sales`)),
    h("div", { class: "price-items" },
      priceItem("Cheapest sold", cheapest.min_price_item), priceItem("Dearest sold", dearest.max_price_item)));
}

function hourTable(rows) {
  return h("details", { class: "data-table" }, h("summary", {}, "The figures as a table"),
    h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, ["Hour (JST)", "Inflow", "Outflow", "Liquidity", "Median price", "Figures"]
        .map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows.map((r) => h("tr", {},
        h("th", { scope: "row" }, dateTime(r.hour_bucket)), h("td", { class: "num" }, count(r.inflow)),
        h("td", { class: "num" }, count(r.outflow)), h("td", { class: "num" }, ratio(r.liquidity_index)),
        h("td", { class: "num" }, price(r.median_price)), h("td", {}, QUALITY_TEXT[r.quality] || "—")))))));
}

export async function renderIp(main, ctx) {
  const id = Number(ctx.match[1]);
  const hours = ctx.params.get("hours") === "168" ? 168 : 24;
  const [ip, hourly, latest, onSale, sold, alerts, schedule] = await Promise.all([
    get(`/api/v1/ips/${id}`),
    settle(get(`/api/v1/ips/${id}/stats/hourly`, { limit: 168 })),
    settle(get(`/api/v1/ips/${id}/liquidity`)),
    settle(list(`/api/v1/ips/${id}/items`, { status: "on_sale", page_size: ITEMS_SHOWN })),
    settle(list(`/api/v1/ips/${id}/items`, { status: "sold", page_size: ITEMS_SHOWN })),
    settle(list("/api/v1/alerts", { ip_id: id, page_size: 10 })),
    settle(get("/api/v1/system/scheduler")),
  ]);
  if (!ctx.current()) return;
  document.title = `${ip.name} — Anime Hot`;
  const rows = hourly.value ? hourly.value.stats : [];
  const newest = rows.length ? new Date(rows[0].hour_bucket).getTime() : hourStart(Date.now()) - HOUR;
  // The server's clock (the schedule's timestamp); without it, the chart ends at the newest hour.
  const now = schedule.value?.timestamp || new Date(newest + HOUR + 1).toISOString();
  const last = hourStart(now) - HOUR;
  const first = last - (hours - 1) * HOUR;
  const inWindow = rows.filter((r) => new Date(r.hour_bucket).getTime() >= first);
  const entry = schedule.value?.schedules.find((e) => e.ip_id === id);

  const charts = h("div", { class: "charts" });
  let drawnWidth = 0;
  const draw = () => {
    const width = Math.max(280, Math.min(charts.clientWidth || main.clientWidth - 32, 1100));
    if (width === drawnWidth) return;
    drawnWidth = width;
    replace(charts,
      h("figure", { class: "chart-box", id: "flow-chart" },
        h("figcaption", {}, "Inflow and outflow per hour ", h("span", { class: "key inflow" }), "inflow ",
          h("span", { class: "key outflow" }), "outflow"),
        flowChart({ rows: inWindow, first, last, width })),
      h("figure", { class: "chart-box", id: "liquidity-chart" },
        h("figcaption", {}, "Liquidity index (outflow / inflow)"), liquidityChart({ rows: inWindow, first, last, width })),
      h("figure", { class: "chart-box", id: "price-chart" },
        h("figcaption", {}, "Sold prices per hour: range and ", h("span", { class: "key median" }), "median"),
        priceChart({ rows: inWindow, first, last, width })));
  };

  const head = h("div", { class: "ip-head" },
    ip.image_url ? h("img", { class: "ip-image", src: ip.image_url, alt: "", width: 64, height: 64, referrerpolicy: "no-referrer" }) : null,
    h("div", {},
      h("h1", { tabindex: "-1" }, h("span", { lang: "ja" }, ip.name)),
      h("p", { class: "names" }, [ip.name_en, ip.name_cn].filter(Boolean).join(" · ") || null,
        ip.category ? h("span", { class: "tag" }, ip.category) : null,
        (ip.tags || []).map((t) => h("span", { class: "tag", lang: "ja" }, t)),
        ip.status !== "active" ? h("span", { class: "tag warn" }, ip.status) : null)));

  const l = latest.value;
  const kpis = l ? h("div", { class: "cards" },
    card("Latest hour", clock(l.updated_at), h("span", { title: l.quality ? QUALITY_HELP[l.quality] : null },
      `${day(l.updated_at)}${l.quality ? `, figures ${QUALITY_TEXT[l.quality]}` : ""}`)),
    card("Inflow", count(l.on_sale_inflow), "new listings"),
    card("Outflow", count(l.on_sale_outflow), "sold"),
    card("Liquidity", ratio(l.liquidity_index), "outflow / inflow"),
    card("Hot score", ratio(l.hot_score)),
    card("On sale", count(l.on_sale_total), `${count(l.sold_total)} known sold`)) : failed(latest, "The latest hour");

  const crawl = h("p", { class: "crawl", id: "next-crawl" },
    "Last crawled ", h("strong", {}, dateTime(ip.last_crawled_at)), " · next crawl ",
    entry ? h("strong", {}, `${dateTime(entry.next_schedule)} (${entry.is_overdue ? "overdue, " : ""}${relative(entry.next_schedule, now)})`)
      : h("strong", {}, schedule.error ? "unknown (schedule unavailable)" : "not scheduled"));

  const windowLinks = h("div", { class: "segmented", role: "group", "aria-label": "Window" },
    h("span", { class: "segmented-label", "aria-hidden": "true" }, "Window"),
    [[24, "24 h"], [168, "7 d"]].map(([value, label]) =>
      h("a", { href: ctx.link(`/ip/${id}`, { hours: value }), "aria-current": value === hours ? "true" : null }, label)));

  const items = (answer, what, when) => {
    if (answer.error) return failed(answer, what);
    if (!answer.value.data.length) return h("p", { class: "empty" }, `No ${what.toLowerCase()} yet.`);
    return h("ul", { class: "items" }, answer.value.data.map((item) => itemCard(item, when(item))));
  };

  replace(main,
    h("p", { class: "crumbs" }, h("a", { href: ctx.link("/leaderboard") }, "← Leaderboard")),
    head, kpis, crawl,
    section(`Hourly figures, last ${hours === 168 ? "7 days" : "24 hours"}`,
      h("div", { class: "controls" }, windowLinks,
        h("span", { class: "window-note" }, `${dateTime(first)} – ${dateTime(last + HOUR)} JST · `,
          `${inWindow.length} hours with figures · `, qualityBadge(worstQuality(inWindow)))),
      hourly.error ? failed(hourly, "The hourly figures") : charts,
      hourly.error ? null : hourTable(inWindow)),
    section("Sold prices", hourly.error ? failed(hourly, "Prices") : soldPrices(inWindow)),
    section("Latest listings", items(onSale, "Listings", (i) => `listed ${dateTime(i.first_seen_at)}`)),
    section("Latest sales", items(sold, "Sales", (i) => `sold ${dateTime(i.sold_at)}`)),
    section("Alerts", alerts.error ? failed(alerts, "Alerts")
      : alertTable(alerts.value.data, ctx, { showIp: false, empty: "No alerts for this IP." }),
    alerts.value && alerts.value.total > alerts.value.data.length
      ? h("p", {}, h("a", { href: ctx.link("/alerts", { ip_id: id }) }, `All ${alerts.value.total} alerts of this IP →`)) : null));
  if (!hourly.error) {
    draw();
    let pending = null;
    const observer = new ResizeObserver(() => {
      if (!charts.isConnected) return observer.disconnect();
      clearTimeout(pending);
      pending = setTimeout(draw, 150);
    });
    observer.observe(charts);
  }
}
