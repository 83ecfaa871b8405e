// Pages of search hits, shared by the search and timeline pages: loading, their cells, the pager,
// and each hit proven against the latest checkpoint.

import * as V from "./verify.js";
import {state} from "./state.js";
import {el, hashEl, link} from "./dom.js";
import {fmtUTC, isCanonicalDecimal} from "./format.js";
import {apiURL, getJSON, tileReader, pool} from "./net.js";
import {errMessage, errorBox, badge, setBadge, failBadge} from "./badges.js";
import {latestCheckpoint} from "./checkpoint.js";
import {parseLeafSafe, subjectStrings, leafMatchesTerm, proveLeaf} from "./leaves.js";
import {loadLogInfo} from "./trust.js";
import {go} from "./router.js";
import {FIELD_LABEL} from "./searchform.js";

const PROOF_CONCURRENCY = 6;

const KIND_LABEL = {
  dsse: "DSSE attestation",
  hashedrekord: "Signed digest",
  rekor: "Rekor v2 entry",
  raw: "Raw bytes",
};

/** Verify hits in the page; fills each hit's badge. Returns counts. */
async function proveHits(hits, cp, field, term, ctx) {
  const counts = {verified: 0, failed: 0, other: 0};
  if (cp.status === "unavailable") {
    for (const h of hits) { setBadge(h.badge, "unavailable"); counts.other++; }
    return counts;
  }
  if (cp.status !== "verified") {
    for (const h of hits) {
      setBadge(h.badge, "failed", `the checkpoint did not verify (${errMessage(cp.error)})`);
      counts.failed++;
    }
    return counts;
  }
  const c = cp.checkpoint;
  const size = Number(c.size);
  const reader = tileReader(size);
  await pool(hits, PROOF_CONCURRENCY, async (h) => {
    if (!ctx.alive()) return;
    if (h.index >= size) {
      setBadge(h.badge, "unavailable", "Not yet covered by the checkpoint");
      h.badge.title = `index ${h.index} is beyond the verified checkpoint's size ${size}`;
      counts.other++;
      return;
    }
    try {
      if (!h.leaf) throw Object.assign(new Error("the hit's leaf is not valid base64"), {code: "bad_leaf"});
      await proveLeaf(h.index, h.leaf, c, reader);
      if (!leafMatchesTerm(h.info, field, term)) {
        throw Object.assign(new Error("the entry does not contain the search term"), {code: "term_mismatch"});
      }
      setBadge(h.badge, "verified");
      h.badge.title = `included at index ${h.index} in the checkpoint of size ${size}`;
      counts.verified++;
    } catch (e) {
      failBadge(h.badge, e);
      counts.failed++;
    }
  });
  return counts;
}

async function prepareHits(rawHits) {
  const out = [];
  for (const hit of rawHits) {
    if (!hit || typeof hit.index !== "number") continue;
    let leaf = null;
    try { leaf = V.b64decode(String(hit.leaf)); } catch { leaf = null; }
    const info = leaf ? await parseLeafSafe(leaf) : {kind: "unparsed", signers: [], subjects: [], predicateType: null};
    out.push({index: hit.index, leaf, info, minute: typeof hit.logged_minute === "number" ? hit.logged_minute : null, badge: badge()});
  }
  return out;
}

export function loggedEl(unix) {
  const iso = new Date(unix * 1000).toISOString();
  return el("time", {datetime: iso, title: fmtUTC(unix, {seconds: false})},
    el("span", {class: "date"}, iso.slice(0, 10)), " ", el("span", {class: "clock"}, `${iso.slice(11, 16)} UTC`));
}

export function kindLabel(kind) {
  return KIND_LABEL[kind] ?? "Unparsed";
}

const KIND_SHORT = {dsse: "DSSE", hashedrekord: "Digest", rekor: "Rekor v2", raw: "Raw"};
export function kindTag(kind) {
  return el("span", {class: `tag kind-${KIND_SHORT[kind] ? kind : "unparsed"}`, title: kindLabel(kind)}, KIND_SHORT[kind] ?? "Unparsed");
}

export function subjectsCell(info, max = 2) {
  const subs = subjectStrings(info);
  if (!subs.length) return el("span", {class: "muted"}, "—");
  return el("ul", {class: "plain compact-list"},
    subs.slice(0, max).map((s) => el("li", null, hashEl(s, "subject digest"))),
    subs.length > max ? el("li", {class: "muted small"}, `+${subs.length - max} more`) : null);
}

export function signersCell(info, max = 2) {
  const sig = (info.signers || []).filter((s) => typeof s === "string");
  if (!sig.length) return el("span", {class: "muted"}, "—");
  return el("ul", {class: "plain compact-list"},
    sig.slice(0, max).map((s) => el("li", null, hashEl(s, "signer"))),
    sig.length > max ? el("li", {class: "muted small"}, `+${sig.length - max} more`) : null);
}

export function predicateText(info) {
  const p = info.predicateType;
  if (typeof p !== "string" || !p) return el("span", {class: "muted"}, "—");
  // Break long type URIs after slashes rather than mid-word.
  const span = el("span", {class: "ptype", title: p});
  p.split(/(?<=\/)/).forEach((part, i) => { if (i) span.append(el("wbr")); span.append(part); });
  return span;
}

async function runSearch(field, term, cursor, limit) {
  const qs = new URLSearchParams();
  qs.set(field, term);
  qs.set("order", "desc");
  qs.set("limit", String(limit));
  if (cursor !== null && cursor !== undefined) qs.set("cursor", String(cursor));
  return getJSON(apiURL(`v1/search?${qs}`));
}

function indexedCaveat(doc, cp) {
  const known = state.logInfo ? Number(state.logInfo.tree_size) : cp.checkpoint ? Number(cp.checkpoint.size) : null;
  if (typeof doc.indexed_size === "number" && known !== null && doc.indexed_size < known) {
    return el("p", {class: "caveat", role: "note", id: "indexed-caveat"},
      `The search index covers entries below ${doc.indexed_size} of ${known}: newer matches may be missing. Try again shortly.`);
  }
  return null;
}

export function termParams(params, {withIndex}) {
  let field = params.get("field") || "subject";
  if (!FIELD_LABEL[field] || (!withIndex && field === "index")) field = "subject";
  const q = (params.get("q") || "").trim();
  const cursorRaw = params.get("cursor");
  const cursor = cursorRaw !== null && isCanonicalDecimal(cursorRaw) ? Number(cursorRaw) : null;
  return {field, q, cursor, badCursor: cursorRaw !== null && cursor === null};
}

/**
 * One page of hits for a term (newest first) and the latest checkpoint, appended to `box`
 * with a live status line; null when the search failed (its error is shown) or the route
 * changed meanwhile.
 */
export async function loadHits(box, {field, q, cursor, limit, waiting}, ctx) {
  const status = el("p", {class: "result-status", "aria-live": "polite", id: "results-status"}, waiting);
  box.append(status);
  const [doc, cp] = await Promise.all([
    runSearch(field, q, cursor, limit).catch((e) => ({error: e})),
    latestCheckpoint(),
    state.logInfo ? null : loadLogInfo(),
  ]);
  if (!ctx.alive()) return null;
  if (doc.error) {
    status.textContent = "";
    box.append(errorBox(doc.error, "Search"));
    return null;
  }
  const hits = await prepareHits(Array.isArray(doc.hits) ? doc.hits : []);
  const caveat = indexedCaveat(doc, cp);
  if (caveat) box.append(caveat);
  if (cp.status === "failed") box.append(errorBox(cp.error, "The latest checkpoint did not verify, so no entry can be proven"));
  return {doc, cp, hits, status};
}

/** The Newest/Older pager of a page of hits under `route`, then each hit proven. */
export async function pageAndProve(box, route, label, {field, q, cursor}, {doc, cp, hits, status}, ctx) {
  const pager = el("nav", {class: "pager", "aria-label": label});
  if (cursor !== null) pager.append(link(`#/${route}?${new URLSearchParams({field, q})}`, "Newest", {id: "newest", class: "button secondary"}));
  if (doc.next_cursor !== null && doc.next_cursor !== undefined) {
    const next = String(doc.next_cursor);
    pager.append(el("button", {type: "button", id: "older", class: "secondary",
      onclick: () => go(`#/${route}?${new URLSearchParams({field, q, cursor: next})}`)}, "Older entries"));
  }
  if (pager.childNodes.length) box.append(pager);
  if (hits.length) {
    const counts = await proveHits(hits, cp, field, q, ctx);
    if (!ctx.alive()) return;
    status.textContent = summaryText(hits.length, counts, cursor !== null);
  }
}

function summaryText(n, counts, older) {
  const parts = [`${n} ${n === 1 ? "entry" : "entries"}${older ? " (older page)" : ", newest first"}`];
  if (counts.verified) parts.push(`${counts.verified} proven in your browser`);
  if (counts.failed) parts.push(`${counts.failed} failed verification`);
  if (counts.other) parts.push(`${counts.other} not verified`);
  return `${parts.join("; ")}.`;
}
