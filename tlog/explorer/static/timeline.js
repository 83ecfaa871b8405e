// The timeline page (#/timeline): a term's hits grouped by day, each proven in the browser.

import {state} from "./state.js";
import {el, link, note} from "./dom.js";
import {fmtDay} from "./format.js";
import {apiURL} from "./net.js";
import {errorBox} from "./badges.js";
import {FIELD_LABEL, searchForm, normalizeTerm} from "./searchform.js";
import {kindTag, subjectsCell, signersCell, predicateText, termParams, loadHits, pageAndProve} from "./hits.js";

const TIMELINE_PAGE_SIZE = 100;

export async function renderTimeline(view, {params}, ctx) {
  const {field, q: rawQ, cursor, badCursor} = termParams(params, {withIndex: false});
  view.append(el("h1", null, "Timeline"));
  view.append(searchForm({field, q: rawQ, withIndex: false, target: "timeline"}));
  const box = el("div", {id: "timeline", class: "timeline"});
  view.append(box);
  if (!rawQ) {
    box.append(note("The entries for a subject, signer or predicate type over time, newest first, each proven in your browser."));
    return;
  }
  if (badCursor) {
    box.append(errorBox({code: "bad_parameter", message: "the cursor is not a whole number"}));
    return;
  }
  const q = normalizeTerm(field, rawQ);
  const feedURL = apiURL(`v1/feed?${new URLSearchParams({[field]: q})}`);
  const alt = el("link", {rel: "alternate", type: "application/atom+xml", href: feedURL, title: `Entries for ${q}`, id: "feed-alternate"});
  document.head.append(alt);
  state.cleanups.push(() => alt.remove());

  box.append(el("p", {class: "term-links"},
    el("span", null, FIELD_LABEL[field], " ", el("code", {class: "term"}, q)), " · ",
    el("a", {href: feedURL, type: "application/atom+xml", id: "feed-link", class: "feed"}, "Atom feed"), " · ",
    link(`#/search?${new URLSearchParams({field, q})}`, "Search results")));
  const page = await loadHits(box, {field, q, cursor, limit: TIMELINE_PAGE_SIZE, waiting: "Loading…"}, ctx);
  if (!page) return;
  const {hits, status} = page;
  if (!hits.length) {
    status.textContent = cursor !== null ? "No older entries." : "No entries found.";
  } else {
    status.textContent = `Proving ${hits.length} entries…`;
    const groups = new Map();
    for (const h of hits) {
      const key = h.minute !== null ? fmtDay(h.minute) : "unknown";
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(h);
    }
    for (const [day, hs] of groups) {
      const hid = `day-${day}`;
      const list = el("ol", {class: "day-list plain"});
      for (const h of hs) {
        list.append(el("li", {class: "hit", "data-index": h.index},
          el("div", {class: "tl-time"}, h.minute !== null
            ? el("time", {datetime: new Date(h.minute * 1000).toISOString()}, new Date(h.minute * 1000).toISOString().slice(11, 16), " UTC")
            : el("span", {class: "muted"}, "—")),
          el("div", {class: "tl-body"},
            el("div", {class: "tl-head"}, link(`#/entry/${h.index}`, `Entry ${h.index}`), " ",
              kindTag(h.info.kind), " ", h.badge),
            h.info.predicateType ? el("div", {class: "tl-meta"}, predicateText(h.info)) : null,
            el("div", {class: "tl-meta"},
              el("span", {class: "tl-field"}, el("span", {class: "tl-label"}, "Subject"), subjectsCell(h.info, 1)),
              el("span", {class: "tl-field"}, el("span", {class: "tl-label"}, "Signer"), signersCell(h.info, 1))))));
      }
      box.append(el("section", {class: "day", "aria-labelledby": hid},
        el("h2", {id: hid}, day === "unknown" ? "Time not recorded" : el("time", {datetime: day}, day)), list));
    }
  }
  await pageAndProve(box, "timeline", "Timeline pages", {field, q, cursor}, page, ctx);
}
