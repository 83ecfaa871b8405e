// An entry's content as text only: its in-toto Statement, its predicate (attacker-controlled
// JSON, bounded in size and depth) and hex dumps.

import {el, hashEl, link, safeHttpUrl, externalLink, dl, note} from "./dom.js";

const HEXDUMP_LIMIT = 4096;
const PREDICATE_NODE_BUDGET = 4000;
const PREDICATE_MAX_DEPTH = 24;

export function hexdump(bytes, limit = HEXDUMP_LIMIT) {
  const lines = [];
  const n = Math.min(bytes.length, limit);
  for (let off = 0; off < n; off += 16) {
    const chunk = bytes.subarray(off, Math.min(off + 16, n));
    const hex = Array.from(chunk, (b) => b.toString(16).padStart(2, "0")).join(" ");
    const ascii = Array.from(chunk, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ".")).join("");
    lines.push(`${off.toString(16).padStart(8, "0")}  ${hex.padEnd(47)}  ${ascii}`);
  }
  if (bytes.length > limit) lines.push(`… ${bytes.length - limit} more bytes (download the leaf for all of it)`);
  return el("pre", {class: "hexdump", tabindex: "0", "aria-label": "Hex dump of the entry"}, lines.join("\n"));
}

/** The predicate (attacker-controlled JSON), as nested definition lists; text only. */
function renderJSONValue(v, depth, budget) {
  if (budget.left-- <= 0) {
    budget.truncated = true;
    return el("span", {class: "muted"}, "…");
  }
  if (v === null) return el("span", {class: "j-null"}, "null");
  if (typeof v === "boolean") return el("span", {class: "j-lit"}, String(v));
  if (typeof v === "number") return el("span", {class: "j-num"}, String(v));
  if (typeof v === "string") {
    const url = safeHttpUrl(v);
    if (url) return externalLink(url, v);
    return el("span", {class: v.length > 80 ? "j-str j-long" : "j-str"}, v);
  }
  if (depth >= PREDICATE_MAX_DEPTH) {
    return el("code", {class: "j-deep"}, JSON.stringify(v));
  }
  if (Array.isArray(v)) {
    if (!v.length) return el("span", {class: "j-empty"}, "[ ] (empty list)");
    const ol = el("ol", {class: "j-array", start: "0"});
    for (const item of v) {
      if (budget.left <= 0) { budget.truncated = true; break; }
      ol.append(el("li", null, renderJSONValue(item, depth + 1, budget)));
    }
    return ol;
  }
  if (typeof v === "object") {
    const keys = Object.keys(v);
    if (!keys.length) return el("span", {class: "j-empty"}, "{ } (empty)");
    const d = el("dl", {class: "j-object"});
    for (const k of keys) {
      if (budget.left <= 0) { budget.truncated = true; break; }
      d.append(el("dt", null, k), el("dd", null, renderJSONValue(v[k], depth + 1, budget)));
    }
    return d;
  }
  return el("span", null, String(v));
}

export function renderStatement(statement, payloadType) {
  const sec = el("section", {id: "statement", class: "card", "aria-labelledby": "statement-h"},
    el("h2", {id: "statement-h"}, "In-toto Statement"));
  if (!statement || typeof statement !== "object") {
    sec.append(note("No in-toto Statement: the envelope's payload is not one."));
    return sec;
  }
  const type = typeof statement._type === "string" ? statement._type : "(missing)";
  const ptype = typeof statement.predicateType === "string" ? statement.predicateType : null;
  const subjects = Array.isArray(statement.subject) ? statement.subject : [];
  const subjTable = el("table", {class: "subjects"},
    el("caption", {class: "visually-hidden"}, "Subjects"),
    el("thead", null, el("tr", null, el("th", {scope: "col"}, "Name"), el("th", {scope: "col"}, "Digests"))));
  const tb = el("tbody");
  for (const s of subjects.slice(0, 500)) {
    if (!s || typeof s !== "object") continue;
    const digests = s.digest && typeof s.digest === "object" ? Object.entries(s.digest) : [];
    tb.append(el("tr", {class: "subject"},
      el("td", {"data-label": "Name", class: "subject-name"}, typeof s.name === "string" && s.name ? s.name : el("span", {class: "muted"}, "(no name)")),
      el("td", {"data-label": "Digests"}, el("ul", {class: "plain compact-list"}, digests.map(([alg, hex]) => {
        const term = `${alg}:${String(hex)}`;
        return el("li", null, hashEl(term, "subject digest"), " ",
          link(`#/search?${new URLSearchParams({field: "subject", q: term})}`, "entries", {class: "small", "aria-label": `Entries with subject ${term}`}));
      })))));
  }
  subjTable.append(tb);
  sec.append(dl([
    ["_type", el("code", {class: "wrap-any"}, type)],
    ["Predicate type", ptype ? [el("code", {class: "wrap-any"}, ptype), " ",
      link(`#/search?${new URLSearchParams({field: "predicate_type", q: ptype})}`, "entries of this type", {class: "small"})] : el("span", {class: "muted"}, "(none)")],
    payloadType ? ["Payload type", el("code", {class: "wrap-any"}, payloadType)] : null,
    ["Subjects", `${subjects.length}${subjects.length > 500 ? " (first 500 shown)" : ""}`],
  ]), el("div", {class: "table-wrap"}, subjTable));
  return sec;
}

export function renderPredicate(statement) {
  const sec = el("section", {class: "card", "aria-labelledby": "predicate-h", id: "predicate-section"},
    el("h2", {id: "predicate-h"}, "Predicate"));
  const box = el("div", {id: "predicate", class: "predicate"});
  const pred = statement && typeof statement === "object" ? statement.predicate : undefined;
  const budget = {left: PREDICATE_NODE_BUDGET, truncated: false};
  if (pred === undefined) box.append(note("The Statement has no predicate."));
  else box.append(renderJSONValue(pred, 0, budget));
  if (budget.truncated) box.append(note("The predicate is too large to show in full; the raw JSON below has all of it.", "caveat"));
  let raw;
  try { raw = JSON.stringify(pred ?? null, null, 2); } catch { raw = String(pred); }
  sec.append(box, el("details", {class: "raw"},
    el("summary", null, "Raw predicate JSON"),
    el("pre", {id: "predicate-raw", tabindex: "0"}, raw)));
  let rawStatement;
  try { rawStatement = JSON.stringify(statement, null, 2); } catch { rawStatement = ""; }
  sec.append(el("details", {class: "raw"},
    el("summary", null, "Raw Statement JSON"),
    el("pre", {id: "statement-raw", tabindex: "0"}, rawStatement)));
  return sec;
}
