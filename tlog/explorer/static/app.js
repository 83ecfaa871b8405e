// The log explorer: a single-page app over the log's documented JSON API and its tiles. This
// module, its entry point, registers the pages with the router and boots.
//
// Everything it shows that can be proven is proven here, in the browser, with verify.js
// (WebCrypto): checkpoints with the trust policy's keys and witnesses, inclusion of every leaf
// shown with proofs computed from the tiles (never the API's own proofs), consistency, receipts.
// Nothing is fetched from outside the log: config.json says where the API and tiles are.
//
// Safety: API data (Statements are attacker-controlled) only ever reaches the page through
// textContent and attributes set one by one; links made from data must parse as http(s) URLs.
//
// DOM contract for tests: every badge is `.badge[data-state]` (pending | verified | failed |
// unavailable); `document.body.dataset.ready` is "" while a route renders and "1" once it and
// all its badges have settled.

import {$} from "./dom.js";
import {errorBox} from "./badges.js";
import {loadConfig, loadTrust, loadLogInfo} from "./trust.js";
import {renderBanners} from "./banners.js";
import {route, defineRoutes} from "./router.js";
import {renderLanding} from "./overview.js";
import {renderSearch} from "./search.js";
import {renderTimeline} from "./timeline.js";
import {renderEntry} from "./entry.js";
import {renderConsistency} from "./consistency.js";

defineRoutes({
  "": {render: renderLanding, nav: "overview", title: "Overview"},
  search: {render: renderSearch, nav: "search", title: "Search"},
  entry: {render: renderEntry, nav: "search", title: "Entry"},
  consistency: {render: renderConsistency, nav: "consistency", title: "Consistency"},
  timeline: {render: renderTimeline, nav: "search", title: "Timeline"},
});

async function boot() {
  document.body.dataset.ready = "";
  const skip = $("#skip-link");
  skip.addEventListener("click", (ev) => {
    ev.preventDefault();
    const main = $("#main");
    main.focus();
    main.scrollIntoView();
  });
  await loadConfig();
  await Promise.all([loadTrust(), loadLogInfo()]);
  renderBanners();
  window.addEventListener("hashchange", route);
  // A click on an in-app link starts a new route: not ready from this moment on.
  document.addEventListener("click", (ev) => {
    const a = ev.target instanceof Element ? ev.target.closest("a[href^='#/']") : null;
    if (a && !ev.defaultPrevented && ev.button === 0 && !ev.metaKey && !ev.ctrlKey && !ev.shiftKey && !ev.altKey) {
      document.body.dataset.ready = "";
      if (a.getAttribute("href") === location.hash) {
        ev.preventDefault(); // no hashchange would follow: render again here
        route();
      }
    }
  }, true);
  await route();
}

boot().catch((e) => {
  const main = $("#main");
  main.replaceChildren(errorBox(e, "The explorer could not start"));
  document.body.dataset.ready = "1";
});
