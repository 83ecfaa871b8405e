// The banners above every page: changed keys, no trust policy, a frozen log, raw entries, plain HTTP.

import {state} from "./state.js";
import {el, $, link, safeHttpUrl, externalLink} from "./dom.js";
import {fmtUTC} from "./format.js";
import {errCode, errMessage, secure} from "./badges.js";
import {vkeyEl, origin} from "./trust.js";

export function renderBanners() {
  const box = $("#banners");
  box.replaceChildren();
  if (state.keyChange) {
    const kc = state.keyChange;
    box.append(el("div", {id: "key-change-warning", class: "banner banner-danger", role: "alert"},
      el("h2", null, "This log's keys changed since you first visited"),
      el("p", null,
        "The server now names different log keys than the ones this browser pinned",
        kc.firstSeen ? ` on ${fmtUTC(Date.parse(kc.firstSeen) / 1000)}` : "",
        ". This explorer keeps verifying with the pinned keys, so checkpoints signed only by the new keys fail. ",
        "A key change is either a planned rotation the operator announced, or a sign the log or this server was compromised."),
      el("div", {class: "keys-compare"},
        el("div", null, el("h3", null, "Pinned in this browser"),
          el("ul", {class: "plain"}, (kc.pinned || []).map((k) => el("li", null, vkeyEl(k, "pinned key"))))),
        el("div", null, el("h3", null, "Served now"),
          el("ul", {class: "plain"}, (kc.served || []).map((k) => el("li", null, vkeyEl(k, "served key")))))),
      el("p", null, "If the rotation is genuine, forget the pinned keys on the ", link("#/", "Overview"), " page.")));
  }
  if (state.trustError) {
    box.append(el("div", {class: "banner banner-danger error", role: "alert"},
      el("p", null, "The log's trust policy could not be loaded, so nothing can be verified: ",
        el("code", null, errCode(state.trustError)), " — ", errMessage(state.trustError))));
  }
  const info = state.logInfo;
  if (info && info.frozen) {
    const succ = safeHttpUrl(info.successor);
    box.append(el("div", {class: "banner banner-warn", role: "status", id: "frozen-banner"},
      el("p", null, el("strong", null, "This log is frozen. "),
        "It is a retired shard: it still serves its entries and proofs but takes no new entries.",
        succ ? [" New entries go to ", externalLink(succ), "."]
          : info.successor ? [` Its successor: ${String(info.successor)}.`] : "")));
  }
  if (info && info.raw_entries_allowed) {
    box.append(el("div", {class: "banner banner-warn", role: "status", id: "raw-banner"},
      el("p", null, el("strong", null, "This log accepts raw entries. "),
        "Raw bytes are logged unchecked and could imitate any attestation, so verifiers refuse its entries unless their policy allows such a log (a test or benchmark log)",
        state.policy ? (state.policy.allow_raw_log ? "; this policy allows it." : "; this policy does not.") : ".")));
  }
  if (!secure()) {
    box.append(el("div", {class: "banner banner-warn", role: "status"},
      el("p", null, el("strong", null, "Cannot verify over plain HTTP. "),
        "Browsers only offer WebCrypto on secure pages (HTTPS or localhost), so this page shows what the log says without checking it.")));
  }
  $("#header-origin").textContent = origin() || "unknown log";
}
