// The search form (landing, search and timeline pages) and how it normalizes a term.

import {el} from "./dom.js";
import {isCanonicalDecimal} from "./format.js";
import {go} from "./router.js";

const SEARCH_FIELDS = [
  ["subject", "Subject digest"],
  ["signer", "Signer key"],
  ["predicate_type", "Predicate type"],
  ["index", "Entry index"],
];
export const FIELD_LABEL = Object.fromEntries(SEARCH_FIELDS);
const FIELD_PLACEHOLDER = {
  subject: "sha256:1368449e…",
  signer: "sha256:a050837d…",
  predicate_type: "https://slsa.dev/provenance/v1",
  index: "0",
};

export function searchForm({field = "subject", q = "", withIndex = true, target = "search", compact = false} = {}) {
  const select = el("select", {id: "search-field", name: "field"});
  for (const [value, label] of SEARCH_FIELDS) {
    if (value === "index" && !withIndex) continue;
    select.append(el("option", {value, selected: value === field}, label));
  }
  const input = el("input", {
    id: "search-q", name: "q", type: "search", value: q, required: true,
    autocomplete: "off", spellcheck: "false", placeholder: FIELD_PLACEHOLDER[field] ?? "",
    "aria-describedby": "search-help",
  });
  select.addEventListener("change", () => { input.placeholder = FIELD_PLACEHOLDER[select.value] ?? ""; });
  const msg = el("p", {class: "form-error", role: "alert", hidden: true});
  const form = el("form", {id: "search-form", class: compact ? "search-form compact" : "search-form", role: "search", novalidate: true},
    el("div", {class: "field field-select"}, el("label", {for: "search-field"}, "Search by"), select),
    el("div", {class: "field field-grow"}, el("label", {for: "search-q"}, "Term"), input),
    el("div", {class: "field field-button"}, el("button", {type: "submit", class: "primary"}, "Search")),
    el("p", {id: "search-help", class: "help"},
      "A subject digest (sha256:<hex>, or 64 hex digits), a signer (sha256 of the key's DER), a predicate type URI, or an entry index."),
    msg);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = select.value;
    let term = input.value.trim();
    msg.hidden = true;
    if (!term) {
      msg.textContent = "Enter a search term.";
      msg.hidden = false;
      input.focus();
      return;
    }
    if (f === "index") {
      if (!isCanonicalDecimal(term)) {
        msg.textContent = "An entry index is a whole number such as 0 or 41.";
        msg.hidden = false;
        input.focus();
        return;
      }
      go(`#/entry/${term}`);
      return;
    }
    term = normalizeTerm(f, term);
    const qs = new URLSearchParams({field: f, q: term});
    go(`#/${target}?${qs}`);
  });
  return form;
}

export function normalizeTerm(field, term) {
  if (field === "subject" || field === "signer") {
    if (/^[0-9a-fA-F]{64}$/.test(term)) return `sha256:${term.toLowerCase()}`;
    const m = /^([A-Za-z0-9_-]+):([0-9a-fA-F]+)$/.exec(term);
    if (m) return `${m[1].toLowerCase()}:${m[2].toLowerCase()}`;
  }
  return term;
}
