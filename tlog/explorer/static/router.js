// The hash router: parses #/route/...?params, renders the route's page, marks the body ready.
// app.js registers the pages (defineRoutes), so pages import go and route from here, no cycle.

import {state} from "./state.js";
import {el, $, link} from "./dom.js";
import {errorBox} from "./badges.js";
import {origin} from "./trust.js";

function parseHash() {
  let h = location.hash || "#/";
  if (!h.startsWith("#/")) h = "#/";
  const [pathPart, query = ""] = h.slice(2).split("?", 2);
  const parts = pathPart.split("/").filter(Boolean).map((p) => {
    try { return decodeURIComponent(p); } catch { return p; }
  });
  return {route: parts[0] ?? "", rest: parts.slice(1), params: new URLSearchParams(query)};
}

export function go(hash) {
  document.body.dataset.ready = "";
  if (location.hash === hash) route();
  else location.hash = hash;
}

/** The pages by route name: {render, nav, title}; app.js defines them. */
const ROUTES = {};

export function defineRoutes(routes) {
  Object.assign(ROUTES, routes);
}

export async function route() {
  const token = ++state.routeToken;
  document.body.dataset.ready = "";
  for (const f of state.cleanups.splice(0)) {
    try { f(); } catch { /* best effort */ }
  }
  const {route: name, rest, params} = parseHash();
  const r = ROUTES[name];
  const main = $("#main");
  const view = el("div", {class: "view"});
  main.replaceChildren(view);
  for (const a of document.querySelectorAll(".site-nav a")) {
    if (r && a.dataset.nav === r.nav) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const ctx = {alive: () => token === state.routeToken, view};
  document.title = `${r ? r.title : "Not found"} · ${origin() || "Log explorer"}`;
  try {
    if (!r) {
      view.append(el("h1", {tabindex: "-1"}, "Page not found"),
        errorBox({code: "not_found", message: `no page ${location.hash}`}),
        el("p", null, link("#/", "Back to the overview")));
    } else {
      await r.render(view, {rest, params}, ctx);
    }
  } catch (e) {
    if (ctx.alive()) view.append(errorBox(e, "This page could not be shown"));
  }
  if (!ctx.alive()) return;
  if (!state.firstRoute) {
    const h1 = $("h1", view);
    if (h1) {
      h1.setAttribute("tabindex", "-1");
      h1.focus({preventScroll: false});
    }
  }
  state.firstRoute = false;
  document.body.dataset.ready = "1";
}
