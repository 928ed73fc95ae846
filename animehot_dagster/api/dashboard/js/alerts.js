// Alerts: the list with filters (severity, acknowledged, IP), pages, and acknowledgement.
// Acknowledging asks for the admin key once; it is kept in sessionStorage (this tab only, gone
// when the tab closes) and sent as the X-API-Key header, as the API's admin routes expect it.
// Without a key nothing is sent; a key the API refuses (401/403) is forgotten at once.

import { ApiError, list, post } from "./api.js";
import { h, replace } from "./dom.js";
import { count, dateTime, ratio } from "./format.js";

const KEY = "animehot.adminKey";
const PAGE_SIZE = 20;
const SEVERITIES = ["critical", "warning", "info"];
const TYPES = {
  high_outflow: "High outflow",
  low_liquidity: "Low liquidity",
  surge: "Surge (high liquidity)",
  high_liquidity: "Surge (high liquidity)",
};

export function storedKey() {
  try {
    return sessionStorage.getItem(KEY) || "";
  } catch {
    return "";
  }
}

function rememberKey(value) {
  try {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  } catch {
    // storage refused (private mode): the key is asked for again next time
  }
}

/** Ask for the admin key in a modal dialog; resolves to the key or "" when cancelled. */
function askKey(message) {
  return new Promise((resolve) => {
    const input = h("input", { id: "admin-key", name: "admin-key", type: "password", autocomplete: "off",
      spellcheck: "false", "aria-describedby": "admin-key-help admin-key-error" });
    const error = h("p", { id: "admin-key-error", class: "error", role: "alert" }, message || "");
    const dialog = h("dialog", { class: "key-dialog", "aria-labelledby": "admin-key-title" });
    const done = (value) => {
      dialog.close();
      dialog.remove();
      resolve(value);
    };
    const form = h("form", { method: "dialog", onsubmit: (event) => {
      event.preventDefault();
      const value = input.value.trim();
      if (!value) {
        replace(error, "The admin key is required to acknowledge an alert.");
        input.focus();
        return;
      }
      done(value);
    } },
    h("h2", { id: "admin-key-title" }, "Admin key"),
    h("label", { for: "admin-key" }, "X-API-Key"),
    input,
    h("p", { id: "admin-key-help", class: "help" }, "The API's ADMIN_API_KEY. Kept in this tab's session only."),
    error,
    h("div", { class: "buttons" },
      h("button", { type: "button", class: "secondary", onclick: () => done("") }, "Cancel"),
      h("button", { type: "submit" }, "Acknowledge")));
    dialog.append(form);
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      done("");
    });
    document.body.append(dialog);
    dialog.showModal();
    input.focus();
  });
}

/** Acknowledge ``alert``: the updated alert, or null when no key was given. Throws ApiError. */
async function acknowledge(alert, status) {
  let key = storedKey();
  let message = "";
  for (;;) {
    if (!key) key = await askKey(message);
    if (!key) {
      replace(status, "Not acknowledged: no admin key given.");
      return null;
    }
    try {
      const updated = await post(`/api/v1/alerts/${alert.id}/ack`, { "X-API-Key": key });
      rememberKey(key);
      return updated;
    } catch (error) {
      if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
        rememberKey("");
        key = "";
        message = `The API refused the key: ${error.message}`;
        continue;
      }
      throw error;
    }
  }
}

function severityBadge(severity) {
  return h("span", { class: `severity ${severity}` }, severity);
}

function ackCell(alert) {
  const cell = h("td", { class: "ack", "data-label": "Status" });
  const status = h("span", { class: "ack-status", role: "status" });
  const show = (current) => {
    if (current.acknowledged) {
      replace(cell, h("span", { class: "acked" }, `acknowledged ${dateTime(current.acknowledged_at)}`));
      return;
    }
    const button = h("button", { type: "button", class: "ack-button", "aria-label": `Acknowledge alert ${current.id}`,
      onclick: async () => {
        button.disabled = true;
        replace(status, "");
        try {
          const updated = await acknowledge(current, status);
          if (updated) show(updated);
        } catch (error) {
          replace(status, `Failed: ${error.message}`);
        } finally {
          button.disabled = false;
        }
      } }, "Acknowledge");
    replace(cell, button, status);
  };
  show(alert);
  return cell;
}

/** The alerts as a table (used by the alerts page and an IP's page). */
export function alertTable(alerts, ctx, { showIp = true, empty = "No alerts." } = {}) {
  if (!alerts.length) return h("p", { class: "empty" }, empty);
  return h("div", { class: "table-wrap" }, h("table", { class: "alerts" },
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, "Hour (JST)"), h("th", { scope: "col" }, "Severity"),
      showIp ? h("th", { scope: "col" }, "IP") : null, h("th", { scope: "col" }, "Alert"),
      h("th", { scope: "col", class: "num" }, "Value"), h("th", { scope: "col", class: "num" }, "Threshold"),
      h("th", { scope: "col" }, "Status"))),
    h("tbody", {}, alerts.map((a) => h("tr", { "data-alert": a.id, "data-acknowledged": String(a.acknowledged) },
      h("td", { "data-label": "Hour" }, dateTime(a.hour_bucket)),
      h("td", { "data-label": "Severity" }, severityBadge(a.severity)),
      showIp ? h("td", { "data-label": "IP" }, h("a", { href: ctx.link(`/ip/${a.ip_id}`), lang: "ja" }, a.ip_name || `#${a.ip_id}`)) : null,
      h("td", { class: "alert-cell", "data-label": "Alert" }, h("strong", {}, TYPES[a.alert_type] || a.alert_type), h("br"),
        h("span", { class: "message", lang: "ja" }, a.message)),
      h("td", { class: "num", "data-label": "Value" }, a.alert_type === "high_outflow" ? count(a.metric_value) : ratio(a.metric_value)),
      h("td", { class: "num", "data-label": "Threshold" }, a.alert_type === "high_outflow" ? count(a.threshold_value) : ratio(a.threshold_value)),
      ackCell(a))))));
}

function select(id, label, value, options, onchange) {
  return h("div", { class: "field" }, h("label", { for: id }, label),
    h("select", { id, name: id, onchange }, options.map(([v, text]) =>
      h("option", { value: v, selected: String(v) === String(value) }, text))));
}

export async function renderAlerts(main, ctx) {
  const severity = SEVERITIES.includes(ctx.params.get("severity")) ? ctx.params.get("severity") : "";
  const acknowledged = ["true", "false", "all"].includes(ctx.params.get("acknowledged")) ? ctx.params.get("acknowledged") : "false";
  const ipId = /^\d+$/.test(ctx.params.get("ip_id") || "") ? ctx.params.get("ip_id") : "";
  const page = Math.max(1, Number(ctx.params.get("page")) || 1);
  document.title = "Alerts — Anime Hot";
  const [answer, ips] = await Promise.all([
    list("/api/v1/alerts", { severity, acknowledged: acknowledged === "all" ? "" : acknowledged, ip_id: ipId, page,
      page_size: PAGE_SIZE }),
    list("/api/v1/ips", { page_size: 100 }).then((r) => r.data, () => []),
  ]);
  if (!ctx.current()) return;
  const state = { severity, acknowledged, ip_id: ipId, page };
  const go = (changes) => {
    location.hash = ctx.link("/alerts", { ...state, page: 1, ...changes });
  };
  const pages = Math.max(1, Math.ceil(answer.total / PAGE_SIZE));
  const forget = storedKey()
    ? h("button", { type: "button", class: "secondary", onclick: (event) => {
      rememberKey("");
      event.target.replaceWith(h("span", { class: "help" }, "Admin key forgotten."));
    } }, "Forget the admin key")
    : null;
  replace(main,
    h("h1", { tabindex: "-1" }, "Alerts"),
    h("p", { class: "lede" }, "Raised per processed crawl on the hour's figures: high outflow, low liquidity, surges. ",
      "Acknowledging one needs the admin key."),
    h("form", { class: "filters", "aria-label": "Filter alerts", onsubmit: (event) => event.preventDefault() },
      select("severity", "Severity", severity, [["", "All"], ...SEVERITIES.map((v) => [v, v])],
        (event) => go({ severity: event.target.value })),
      select("acknowledged", "Status", acknowledged,
        [["false", "Not acknowledged"], ["true", "Acknowledged"], ["all", "All"]],
        (event) => go({ acknowledged: event.target.value })),
      select("ip", "IP", ipId, [["", "All IPs"], ...ips.map((ip) => [ip.id, ip.name_en ? `${ip.name} (${ip.name_en})` : ip.name])],
        (event) => go({ ip_id: event.target.value })),
      forget),
    h("p", { class: "count", role: "status" }, `${count(answer.total)} alert${answer.total === 1 ? "" : "s"}`,
      pages > 1 ? ` · page ${page} of ${pages}` : ""),
    alertTable(answer.data, ctx, { empty: "No alerts match." }),
    pages > 1 ? h("nav", { class: "pager", "aria-label": "Pages of alerts" },
      page > 1 ? h("a", { href: ctx.link("/alerts", { ...state, page: page - 1 }) }, "← Newer") : null,
      page < pages ? h("a", { href: ctx.link("/alerts", { ...state, page: page + 1 }) }, "Older →") : null) : null);
}
