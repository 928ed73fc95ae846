// System: the pipeline, queues, scheduler and database as the API reports them
// (/api/v1/system/status and /api/v1/system/scheduler), and the operators' tools.

import { get, settle } from "./api.js";
import { h, replace } from "./dom.js";
import { count, dateTime, relative } from "./format.js";

function state(ok, yes = "ok", no = "down") {
  return h("span", { class: `state ${ok ? "ok" : "bad"}` }, ok ? yes : no);
}

function dl(pairs) {
  return h("dl", { class: "facts" }, pairs.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
}

function box(title, ...children) {
  return h("section", { class: "panel card-box" }, h("h2", {}, title), ...children);
}

export async function renderSystem(main, ctx) {
  document.title = "System — Anime Hot";
  const [status, scheduler] = await Promise.all([
    get("/api/v1/system/status"),
    settle(get("/api/v1/system/scheduler")),
  ]);
  if (!ctx.current()) return;
  const queues = status.queues || {};
  const links = [...(ctx.config.links || []),
    { label: "API reference (OpenAPI)", url: "docs" }, { label: "Health", url: "health" }];
  const schedules = scheduler.value ? scheduler.value.schedules : [];
  replace(main,
    h("h1", { tabindex: "-1" }, "System"),
    h("p", { class: "lede" }, "Overall ", state(status.status === "ok", "ok", status.status), ` as of ${dateTime(status.timestamp)} JST.`),
    h("div", { class: "grid" },
      box("Pipeline", dl([
        ["Running", state(status.pipeline.running, "yes", "no")],
        ["Crawls applied", count(status.pipeline.processed)],
        ["Failed", count(status.pipeline.failed)],
        ["Success rate", `${(status.pipeline.success_rate * 100).toFixed(1)} %`],
      ])),
      box("Queues", dl([
        ["Redis", state(status.redis === "ok", "ok", status.redis)],
        ["Crawl tasks waiting", count(queues.tasks)],
        ["Results waiting", count(queues.results)],
        ["Dead letters", h("span", { class: queues.dead_letter ? "warn-text" : "" }, count(queues.dead_letter))],
      ])),
      box("Scheduler", dl([
        ["Running", state(status.scheduler.running, "yes", "no")],
        ["IPs scheduled", count(status.scheduler.total_ips)],
        ["Overdue", h("span", { class: status.scheduler.overdue_ips ? "warn-text" : "" }, count(status.scheduler.overdue_ips))],
      ])),
      box("Database", dl([
        ["Connected", state(status.database.connected, "yes", "no")],
        ["IPs", count(status.database.ip_count)],
        ["Items on sale", count(status.stats.active_items)],
        ["Alerts not acknowledged", h("a", { href: ctx.link("/alerts") }, count(status.stats.unacked_alerts))],
      ]))),
    h("section", { class: "panel", "aria-labelledby": "tools" }, h("h2", { id: "tools" }, "Tools"),
      h("ul", { class: "links" }, links.map((l) => h("li", {}, h("a", { href: l.url, rel: "noopener" }, l.label)))),
      (ctx.config.links || []).length ? null
        : h("p", { class: "help" }, "Links to the Dagster UI, Grafana and the metrics appear here when DASHBOARD_LINKS is set.")),
    h("section", { class: "panel", "aria-labelledby": "schedule" }, h("h2", { id: "schedule" }, "Crawl schedule"),
      scheduler.error ? h("p", { class: "error", role: "alert" }, `The schedule is unavailable: ${scheduler.error.message}`)
        : !schedules.length ? h("p", { class: "empty" }, "Nothing scheduled.")
          : h("div", { class: "table-wrap" }, h("table", { class: "schedule" },
            h("caption", {}, `Soonest first: ${schedules.length} IPs`),
            h("thead", {}, h("tr", {}, ["IP", "Next crawl (JST)", "When"].map((t) => h("th", { scope: "col" }, t)))),
            h("tbody", {}, schedules.slice(0, 50).map((e) => h("tr", { class: e.is_overdue ? "overdue" : "" },
              h("th", { scope: "row" }, h("a", { href: ctx.link(`/ip/${e.ip_id}`), lang: "ja" }, e.ip_name || `#${e.ip_id}`)),
              h("td", {}, dateTime(e.next_schedule)),
              h("td", {}, e.is_overdue ? `overdue (${relative(e.next_schedule, scheduler.value.timestamp || status.timestamp)})`
                : relative(e.next_schedule, scheduler.value.timestamp || status.timestamp)))))))));
}
