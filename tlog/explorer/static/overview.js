// The landing page (#/): latest checkpoint, witnesses, activity, documents, trust and TPM anchoring.

import * as V from "./verify.js";
import {state} from "./state.js";
import {el, $, announce, hashEl, link, dl, section, note} from "./dom.js";
import {fmtUTC, fmtDuration, timeEl, fmtRate, fmtInt, toBytes, b64} from "./format.js";
import {apiURL, tilesURL, getJSON, getBytes} from "./net.js";
import {errorBox, badge, setBadge, failBadge, secure} from "./badges.js";
import {latestCheckpoint} from "./checkpoint.js";
import {vkeyParts, vkeyEl, forgetPin, loadTrust, loadLogInfo, origin} from "./trust.js";
import {renderBanners} from "./banners.js";
import {route} from "./router.js";
import {searchForm} from "./searchform.js";

export async function renderLanding(view, _args, ctx) {
  await loadLogInfo();
  if (!ctx.alive()) return;
  renderBanners();
  const pol = state.policy;
  view.append(
    el("div", {class: "hero"},
      el("h1", null, "Transparency log"),
      el("p", {class: "origin-line"}, el("span", {class: "label"}, "Origin "), el("code", {id: "origin"}, origin() || "unknown")),
      el("p", {class: "lede"}, "An append-only log of signed attestations. Every checkpoint, proof and receipt on these pages is verified here, in your browser, with the keys below."),
      searchForm({compact: true})));
  if (state.configNote) view.append(note(state.configNote, "muted small"));

  const cpCard = section("Latest checkpoint", {id: "checkpoint-card"});
  const witCard = section("Witnesses", {id: "witness-card"});
  const trustCard = section("Trust", {id: "trust-card"});
  const actCard = section("Activity", {id: "activity-card"});
  const linksCard = section("Documents", {id: "links-card"});
  view.append(el("div", {class: "grid"}, cpCard, witCard, actCard, linksCard, trustCard));

  const fingerprints = renderTrustCard(trustCard, pol);
  renderLinks(linksCard);

  await Promise.all([
    ...fingerprints,
    renderCheckpointCards(cpCard, witCard, ctx),
    renderActivity(actCard, ctx),
    renderAnchoring(trustCard, ctx),
  ]);
}

/** Returns what is still being filled in (key fingerprints). */
function renderTrustCard(card, pol) {
  const pending = [];
  const src = el("p", {id: "trust-source"});
  if (!state.trust) {
    src.append("No trust policy: nothing on these pages can be verified.");
  } else if (state.trust.source === "build") {
    src.append(el("strong", null, "Keys pinned in this explorer's build"),
      " (its config.json): the server cannot change them.");
  } else {
    const when = state.trust.firstSeen ? fmtUTC(Date.parse(state.trust.firstSeen) / 1000) : "an unknown date";
    if (state.trust.pinned) {
      src.append(el("strong", null, `Keys from this server, first seen ${when}, pinned in this browser`),
        ": trusted on first use; a later change of keys is flagged.");
    } else {
      src.append(el("strong", null, "Keys from this server, not pinned"),
        ": this browser's storage is unavailable, so a change of keys would go unnoticed.");
    }
  }
  card.append(src);
  if (state.trust && state.trust.source === "tofu" && state.trust.pinned) {
    card.append(el("p", null, el("button", {
      type: "button", id: "forget-pin", class: "secondary",
      onclick: async () => {
        forgetPin(state.trust.origin);
        await loadTrust();
        renderBanners();
        announce("Pinned keys forgotten; the server's keys are pinned again");
        route();
      },
    }, "Forget the pinned keys")));
  }
  if (!pol) return pending;
  const keys = el("ul", {class: "keys plain", id: "log-keys"});
  for (const k of pol.log_keys || []) {
    const p = vkeyParts(k);
    const fp = el("span", {class: "fingerprint muted"});
    keys.append(el("li", null,
      el("div", {class: "key-head"}, el("span", {class: "key-alg"}, p.alg), " key ", el("code", null, p.keyId)),
      vkeyEl(k), fp));
    if (secure() && p.key) {
      pending.push(Promise.resolve().then(() => V.sha256(V.b64decode(p.key))).then((d) => {
        fp.replaceChildren("SHA-256 ", hashEl(V.hex(toBytes(d)), "key fingerprint"));
      }).catch(() => {}));
    }
  }
  card.append(el("h3", null, "Log keys"), keys,
    el("p", {class: "small muted"}, pol.log_signatures === "any"
      ? "Any one of these keys must sign a checkpoint."
      : "Every one of these keys must sign a checkpoint."));
  if (Array.isArray(pol.witnesses) && pol.witnesses.length) {
    card.append(el("p", {class: "small muted"},
      `${pol.witness_quorum} of ${pol.witnesses.length} witnesses must cosign.`,
      typeof pol.max_age_seconds === "number" ? ` Checkpoints older than ${fmtDuration(pol.max_age_seconds)} are refused.` : ""));
  }
  card.append(el("p", {id: "tpm-status", class: "small"}, "Checking TPM anchoring…"));
  return pending;
}

async function renderAnchoring(card, ctx) {
  const p = $("#tpm-status", card);
  if (!p) return;
  try {
    const doc = await getBytes(apiURL("v1/log/key-attestation"));
    if (!ctx.alive()) return;
    const url = URL.createObjectURL(new Blob([doc], {type: "application/json"}));
    state.cleanups.push(() => URL.revokeObjectURL(url));
    p.replaceChildren(el("span", {class: "tag tag-good", id: "tpm-anchored"}, "TPM-anchored"),
      " The log serves a TPM2_Certify of its ECDSA checkpoint key by a TPM attestation key; this page does not check it. ",
      el("a", {href: url, download: "key-attestation.json", id: "key-attestation-link"}, "Download the key attestation"),
      state.policy?.tpm_aks?.length ? " (your policy requires it: tlog-client checks it against the policy's attestation keys)."
        : " (tlog-client checks it when a policy lists trusted attestation keys, docs/tpm.md).");
  } catch (e) {
    if (!ctx.alive()) return;
    if (e.status === 404) p.replaceChildren(el("span", {class: "tag"}, "Not TPM-anchored"), " The log's key is not certified by a TPM.");
    else p.replaceChildren(errorBox(e, "Key attestation"));
  }
}

function renderLinks(card) {
  card.append(el("ul", {class: "links plain"},
    el("li", null, el("a", {id: "policy-link", href: apiURL("v1/log/policy")}, "Client trust policy"), " ", el("span", {class: "muted small"}, "JSON, for tlog-client")),
    el("li", null, el("a", {id: "trusted-root-link", href: apiURL("v1/sigstore/trusted-root.json")}, "Sigstore TrustedRoot"), " ", el("span", {class: "muted small"}, "for Sigstore clients")),
    el("li", null, el("a", {id: "openapi-link", href: apiURL("v1/openapi.json")}, "OpenAPI description"), " ", el("span", {class: "muted small"}, "of this JSON API")),
    el("li", null, el("a", {id: "checkpoint-link", href: tilesURL("checkpoint")}, "Checkpoint"), " ", el("span", {class: "muted small"}, "the signed tree head, as text"))));
}

async function renderCheckpointCards(cpCard, witCard, ctx) {
  const b = badge("checkpoint-badge");
  const live = el("div", {class: "badge-row", "aria-live": "polite"}, b);
  cpCard.append(live);
  const body = el("div");
  cpCard.append(body);
  const cp = await latestCheckpoint();
  if (!ctx.alive()) return;

  if (cp.status === "verified") setBadge(b, "verified");
  else if (cp.status === "unavailable") setBadge(b, "unavailable");
  else failBadge(b, cp.error);

  const c = cp.checkpoint;
  if (!cp.text) {
    body.append(errorBox(cp.error, "The checkpoint could not be fetched"));
  } else {
    const size = c ? Number(c.size) : null;
    const rows = [
      ["Tree size", c ? [el("span", {id: "tree-size", class: "num"}, String(c.size)), size === 1 ? " entry" : " entries"] : el("span", {id: "tree-size"}, "unknown")],
      ["Root hash", c ? hashEl(b64(c.root), "root hash") : "unknown"],
    ];
    if (state.logInfo && c && Number(state.logInfo.tree_size) !== size) {
      rows.push(["Log size now", [String(state.logInfo.tree_size), el("span", {class: "muted small"}, " (unverified; the checkpoint is signed once witnesses cosign)")]]);
    }
    const pol = state.policy;
    const witnesses = pol && Array.isArray(pol.witnesses) ? pol.witnesses : [];
    let age;
    if (!witnesses.length) {
      age = el("span", {id: "checkpoint-age"}, "No witnesses: checkpoints carry no signed time");
    } else if (cp.result && typeof cp.result.newestCosignature === "number") {
      age = el("span", {id: "checkpoint-age"}, timeEl(cp.result.newestCosignature, {relative: true}),
        el("span", {class: "muted small"}, " (newest verified cosignature)"));
    } else {
      age = el("span", {id: "checkpoint-age", class: "muted"}, "unknown (no verified cosignature)");
    }
    rows.push(["Age", age]);
    body.append(dl(rows));
    if (cp.status === "failed") body.append(errorBox(cp.error, "Checkpoint"));
    if (c && size > 0) {
      body.append(el("p", {class: "small"}, link(`#/entry/${size - 1}`, "Latest entry"), " · ",
        link(`#/consistency?${new URLSearchParams({new: String(size)})}`, "Check consistency")));
    }
  }

  // Witnesses
  const list = el("ul", {id: "witnesses", class: "witnesses plain"});
  const pol = state.policy;
  const polWitnesses = pol && Array.isArray(pol.witnesses) ? pol.witnesses : [];
  let cos = [];
  if (cp.result) cos = cp.result.cosignatures || [];
  else if (cp.note && Array.isArray(cp.note.signatures)) {
    const names = new Set(polWitnesses.map((w) => vkeyParts(w).name));
    cos = cp.note.signatures.filter((s) => names.has(s.name)).map((s) => ({name: s.name, time: s.time ?? null, verified: false}));
  }
  for (const s of cos) {
    const ok = cp.result && s.verified === true && !s.future;
    const checked = !!cp.result;
    list.append(el("li", {"data-verified": ok ? "true" : "false", class: ok ? "ok" : checked ? "bad" : "unchecked"},
      el("span", {class: "mark", "aria-hidden": "true"}, ok ? "✓" : checked ? "✗" : "?"),
      el("span", {class: "wname"}, String(s.name)),
      el("span", {class: "visually-hidden"}, ok ? " verified" : checked ? " not verified" : " not checked"),
      s.future ? el("span", {class: "wtime bad-text"}, "dated in the future: not counted") : null,
      checked && !s.verified ? el("span", {class: "wtime bad-text"}, "the cosignature does not verify") : null,
      el("span", {class: "wtime"}, typeof s.time === "number" ? timeEl(s.time, {relative: true}) : "")));
  }
  if (!polWitnesses.length) {
    witCard.append(note("This log's policy names no witnesses: no checkpoint carries a signed time, and nobody else attests that everyone sees the same tree."));
  } else {
    const verified = cos.filter((s) => cp.result && s.verified && !s.future).length;
    const need = pol.witness_quorum;
    witCard.append(el("p", {class: "quorum"},
      `${verified} of ${polWitnesses.length} witnesses cosigned; ${need} required`,
      cp.result ? (cp.result.quorumMet ? " — quorum met" : " — quorum not met") : ""));
  }
  if (cos.length) witCard.append(list);
  else {
    witCard.append(list);
    if (polWitnesses.length) witCard.append(note("The checkpoint carries no cosignature from a trusted witness."));
  }
}

async function renderActivity(card, ctx) {
  const fig = el("figure", {id: "activity", class: "activity"});
  card.append(fig);
  let doc;
  try {
    doc = await getJSON(apiURL("v1/log/activity?minutes=60"));
  } catch (e) {
    if (!ctx.alive()) return;
    fig.append(errorBox(e, "Activity"));
    return;
  }
  if (!ctx.alive()) return;
  const minutes = Array.isArray(doc.minutes) ? doc.minutes.filter((m) => m && typeof m.entries === "number") : [];
  const total = minutes.reduce((a, m) => a + m.entries, 0);
  const peak = minutes.reduce((a, m) => Math.max(a, m.entries), 0);
  const W = 600;
  const H = 100;
  const padB = 2;
  const n = Math.max(minutes.length, 1);
  const bw = W / n;
  const svg = el("svg:svg", {viewBox: `0 0 ${W} ${H}`, class: "chart", "aria-hidden": "true", focusable: "false", preserveAspectRatio: "none"});
  const chartH = H - padB;
  svg.append(el("svg:line", {x1: 0, x2: W, y1: chartH + 0.5, y2: chartH + 0.5, class: "axis"}));
  minutes.forEach((m, i) => {
    const h = peak ? Math.max(m.entries ? 2 : 0, (m.entries / peak) * (chartH - 6)) : 0;
    const rect = el("svg:rect", {
      x: (i * bw + bw * 0.12).toFixed(2), y: (chartH - h).toFixed(2),
      width: (bw * 0.76).toFixed(2), height: h.toFixed(2),
      class: i === minutes.length - 1 ? "bar bar-current" : "bar",
    });
    rect.append(el("svg:title", null, `${fmtUTC(m.start, {seconds: false})}: ${m.entries} entries (${fmtRate(m.entries / 60)}/s)`));
    svg.append(rect);
  });
  const ticks = el("div", {class: "chart-ticks", "aria-hidden": "true"},
    el("span", null, minutes.length ? `${minutes.length} min ago` : ""), el("span", null, "now"));
  fig.append(svg, ticks, el("figcaption", null,
    `${fmtInt(total)} ${total === 1 ? "entry" : "entries"} in the last hour, peak ${fmtRate(peak / 60)}/s`,
    el("span", {class: "muted small"}, " (per minute, by the log's own clock)")));
}
