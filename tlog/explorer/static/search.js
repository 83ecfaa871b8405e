// The search page (#/search): a table of the hits for a term, each proven in the browser.

import {el, link} from "./dom.js";
import {isCanonicalDecimal} from "./format.js";
import {apiURL} from "./net.js";
import {errorBox} from "./badges.js";
import {route} from "./router.js";
import {FIELD_LABEL, searchForm, normalizeTerm} from "./searchform.js";
import {loggedEl, kindTag, subjectsCell, signersCell, predicateText, termParams, loadHits,
  pageAndProve} from "./hits.js";

const PAGE_SIZE = 20;

export async function renderSearch(view, {params}, ctx) {
  const {field, q: rawQ, cursor, badCursor} = termParams(params, {withIndex: true});
  view.append(el("h1", null, "Search"));
  view.append(searchForm({field, q: rawQ}));
  const results = el("div", {id: "results", class: "results"});
  view.append(results);
  if (!rawQ) {
    results.append(el("div", {class: "empty"},
      el("p", null, "Find entries by what they attest to, who signed them, or what kind of attestation they are."),
      el("ul", null,
        el("li", null, el("strong", null, "Subject digest: "), "the digest of an artifact, such as ", el("code", null, "sha256:1368449e…"), "."),
        el("li", null, el("strong", null, "Signer: "), "SHA-256 of the signer's DER public key, ", el("code", null, "sha256:<hex>"), "."),
        el("li", null, el("strong", null, "Predicate type: "), "a URI such as ", el("code", null, "https://slsa.dev/provenance/v1"), "."))));
    return;
  }
  if (field === "index") {
    if (isCanonicalDecimal(rawQ)) {
      history.replaceState(null, "", `#/entry/${rawQ}`);
      route();
      return;
    }
    results.append(errorBox({code: "bad_parameter", message: "an entry index is a whole number"}));
    return;
  }
  const q = normalizeTerm(field, rawQ);
  if (badCursor) {
    results.append(errorBox({code: "bad_parameter", message: "the cursor is not a whole number"}));
    return;
  }
  const page = await loadHits(results, {field, q, cursor, limit: PAGE_SIZE, waiting: "Searching…"}, ctx);
  if (!page) return;
  const {hits, status} = page;

  const termLinks = el("p", {class: "term-links small"},
    link(`#/timeline?${new URLSearchParams({field, q})}`, "Timeline for this term", {id: "timeline-link"}), " · ",
    el("a", {href: apiURL(`v1/feed?${new URLSearchParams({[field]: q})}`), type: "application/atom+xml", id: "feed-link"}, "Atom feed"));
  results.append(termLinks);

  if (!hits.length) {
    status.textContent = cursor !== null ? "No older entries." : `No entries found for ${FIELD_LABEL[field].toLowerCase()} ${q}.`;
  } else {
    const table = el("table", {class: "hits"},
      el("caption", {class: "visually-hidden"}, `Entries matching ${q}, newest first`),
      el("thead", null, el("tr", null,
        ["Entry", "Predicate type", "Subjects", "Signers", "Logged", "Proof"].map((t) => el("th", {scope: "col"}, t)))));
    const tbody = el("tbody");
    for (const h of hits) {
      const cell = (label, cls, ...kids) => el("td", {"data-label": label, class: cls}, el("div", {class: "cell"}, ...kids));
      tbody.append(el("tr", {class: "hit", "data-index": h.index},
        cell("Entry", "idx", link(`#/entry/${h.index}`, String(h.index), {"aria-label": `Entry ${h.index}`}), " ", kindTag(h.info.kind)),
        cell("Predicate", "predicate-type", predicateText(h.info)),
        cell("Subjects", "subjects", subjectsCell(h.info)),
        cell("Signers", "signers", signersCell(h.info)),
        cell("Logged", "logged", h.minute !== null ? loggedEl(h.minute) : el("span", {class: "muted"}, "unknown")),
        cell("Proof", "proof", h.badge)));
    }
    table.append(tbody);
    results.append(el("div", {class: "table-wrap"}, table));
    status.textContent = `Proving ${hits.length} ${hits.length === 1 ? "entry" : "entries"}…`;
  }

  await pageAndProve(results, "search", "Result pages", {field, q, cursor}, page, ctx);
}
