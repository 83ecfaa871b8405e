// How outcomes are shown: error boxes with evidence, verification badges (the tests' DOM contract:
// `.badge[data-state]`) and the items of a list of checks.

import * as V from "./verify.js";
import {state} from "./state.js";
import {el} from "./dom.js";

const BADGE_TEXT = {
  pending: "Verifying…",
  verified: "Verified in your browser",
  unavailable: "Cannot verify over plain HTTP",
};

export function errCode(e) {
  return (e && typeof e.code === "string" && e.code) || (e && e.name) || "error";
}

export function errMessage(e) {
  return (e && typeof e.message === "string" && e.message) || String(e);
}

function evidenceEl(e) {
  if (!e || e.evidence === undefined || e.evidence === null) return null;
  let text;
  try {
    text = JSON.stringify(e.evidence, (_k, v) => (v instanceof Uint8Array ? V.b64encode(v) : v), 2);
  } catch {
    text = String(e.evidence);
  }
  return el("details", {class: "evidence"}, el("summary", null, "Evidence"), el("pre", null, text));
}

/** An API (or other) error, shown to everyone and announced. */
export function errorBox(e, context) {
  return el("div", {class: "error", role: "alert"},
    el("p", null,
      context ? `${context}: ` : "",
      el("code", {class: "error-code"}, errCode(e)),
      e && e.status ? ` (HTTP ${e.status})` : "",
      " — ", errMessage(e)),
    evidenceEl(e));
}

export function badge(id) {
  const b = el("span", {class: "badge", id});
  setBadge(b, "pending");
  return b;
}

export function setBadge(b, st, reason) {
  b.dataset.state = st;
  if (st === "failed") b.textContent = `Verification failed: ${reason ?? "unknown error"}`;
  else b.textContent = reason && st !== "verified" ? reason : BADGE_TEXT[st];
}

export function failBadge(b, e) {
  setBadge(b, "failed", errMessage(e));
  b.title = `${errCode(e)}: ${errMessage(e)}`;
}

export function secure() {
  try {
    return !!V.canVerify();
  } catch {
    return false;
  }
}

export function noPolicyError() {
  const e = new Error(state.trustError
    ? `no trust policy (${errMessage(state.trustError)})`
    : "no trust policy");
  e.code = "no_policy";
  return e;
}

export function checkItem(list, name, label) {
  const li = el("li", {"data-check": name, "data-ok": "pending", class: "check pending"},
    el("span", {class: "mark", "aria-hidden": "true"}, "…"),
    el("div", {class: "check-body"}, el("span", {class: "check-label"}, label), el("span", {class: "visually-hidden check-sr"}, ": checking")));
  list.append(li);
  return {
    li,
    pass(detail) {
      li.dataset.ok = "true";
      li.className = "check ok";
      li.firstChild.textContent = "✓";
      li.querySelector(".check-sr").textContent = ": passed";
      if (detail) li.lastChild.append(el("span", {class: "check-detail"}, detail));
    },
    fail(e) {
      li.dataset.ok = "false";
      li.dataset.reason = errMessage(e);
      li.className = "check bad";
      li.firstChild.textContent = "✗";
      li.querySelector(".check-sr").textContent = ": failed";
      li.lastChild.append(el("span", {class: "check-detail"}, el("code", {class: "error-code"}, errCode(e)), " ", errMessage(e)), evidenceEl(e));
    },
  };
}
