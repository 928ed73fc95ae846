// The dashboard: hash routes (#/leaderboard?type=hot&hours=24, #/ip/3?hours=168, #/alerts?…,
// #/system), so any view can be shared as a link. Each view renders into <main> and marks it
// data-state="ready" once its data is on the page (or "error").

import { h, replace } from "./dom.js";
import { renderAlerts } from "./alerts.js";
import { renderIp } from "./ip.js";
import { renderLeaderboard } from "./leaderboard.js";
import { renderSystem } from "./system.js";

const main = document.getElementById("view");
const config = (() => {
  try {
    return JSON.parse(document.getElementById("dashboard-config").textContent || "{}");
  } catch {
    return {};
  }
})();

const ROUTES = [
  { pattern: /^\/?(?:leaderboard)?$/, name: "leaderboard", view: renderLeaderboard },
  { pattern: /^\/ip\/(\d+)$/, name: "ip", view: renderIp },
  { pattern: /^\/alerts$/, name: "alerts", view: renderAlerts },
  { pattern: /^\/system$/, name: "system", view: renderSystem },
];

export function parseHash(hash = location.hash) {
  const text = hash.replace(/^#/, "") || "/leaderboard";
  const [path, query = ""] = text.split("?");
  return { path, params: new URLSearchParams(query) };
}

/** A route's hash: go("/alerts", {severity: "critical"}). */
export function link(path, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") query.set(key, value);
  }
  const text = query.toString();
  return `#${path}${text ? `?${text}` : ""}`;
}

let generation = 0;

async function render() {
  const { path, params } = parseHash();
  const route = ROUTES.find((r) => r.pattern.test(path));
  const mine = ++generation;
  for (const item of document.querySelectorAll("[data-nav]")) {
    const current = route && (item.dataset.nav === route.name || (route.name === "ip" && item.dataset.nav === "leaderboard"));
    if (current) item.setAttribute("aria-current", "page");
    else item.removeAttribute("aria-current");
  }
  main.dataset.state = "loading";
  main.dataset.route = location.hash || "#/leaderboard";
  main.setAttribute("aria-busy", "true");
  if (!route) {
    replace(main, h("h1", { tabindex: "-1" }, "Not found"), h("p", {}, "No such page. ", h("a", { href: "#/leaderboard" }, "The leaderboard")));
    main.dataset.state = "error";
    main.removeAttribute("aria-busy");
    return;
  }
  const ctx = {
    config,
    link,
    params,
    match: path.match(route.pattern),
    current: () => mine === generation,
  };
  try {
    await route.view(main, ctx);
    if (ctx.current()) main.dataset.state = "ready";
  } catch (error) {
    if (!ctx.current()) return;
    replace(main, h("h1", { tabindex: "-1" }, "Something went wrong"),
      h("p", { class: "error", role: "alert" }, error.message || String(error)));
    main.dataset.state = "error";
  } finally {
    if (ctx.current()) main.removeAttribute("aria-busy");
  }
}

window.addEventListener("hashchange", () => {
  render().then(() => {
    const heading = main.querySelector("h1");
    if (heading) heading.focus({ preventScroll: true });
  });
});
render();
