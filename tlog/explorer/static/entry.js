// The entry page (#/entry/N): summary, Statement or digest, signers, downloads, and every check.

import * as V from "./verify.js";
import {state} from "./state.js";
import {el, hashEl, link, dl, section, note} from "./dom.js";
import {timeEl, isCanonicalDecimal, toBytes, b64, utf8} from "./format.js";
import {apiURL, getJSON, getText, getBytes, fetchTile} from "./net.js";
import {errCode, errorBox, badge, setBadge, failBadge, secure, noPolicyError, checkItem} from "./badges.js";
import {nowSeconds, latestCheckpoint} from "./checkpoint.js";
import {parseLeafSafe, subjectStrings, signerRows} from "./leaves.js";
import {loadLogInfo, origin} from "./trust.js";
import {kindLabel} from "./hits.js";
import {hexdump, renderStatement, renderPredicate} from "./statement.js";
import {receiptError, checkReceipt} from "./receipt.js";

function blobLink(bytes, type, filename, kind, text) {
  const url = URL.createObjectURL(new Blob([bytes], {type}));
  state.cleanups.push(() => URL.revokeObjectURL(url));
  return el("a", {href: url, download: filename, "data-kind": kind, class: "download"}, text);
}

export async function renderEntry(view, {rest}, ctx) {
  const raw = rest[0] ?? "";
  view.append(el("h1", null, `Entry ${raw}`));
  if (!isCanonicalDecimal(raw)) {
    view.append(errorBox({code: "bad_parameter", message: "an entry index is a canonical decimal number such as 0 or 41"}));
    return;
  }
  const index = Number(raw);
  document.title = `Entry ${index} · ${origin() || "Log explorer"}`;
  const b = badge("badge");
  const checks = el("ul", {id: "checks", class: "checks plain"});
  const verifyCard = el("section", {class: "card verify-card", "aria-labelledby": "verify-h"},
    el("h2", {id: "verify-h"}, "Verification"),
    el("div", {class: "badge-row", "aria-live": "polite"}, b),
    checks);
  view.append(verifyCard);

  let leafBytes;
  try {
    leafBytes = await getBytes(apiURL(`v1/entries/${index}`));
  } catch (e) {
    if (!ctx.alive()) return;
    failBadge(b, e);
    view.append(errorBox(e, `Entry ${index}`));
    return;
  }
  if (!ctx.alive()) return;
  const info = await parseLeafSafe(leafBytes);
  const wantsEnvelope = info.kind === "dsse" || info.kind === "rekor";

  const [timeDoc, envelope, receipt, cp] = await Promise.all([
    getJSON(apiURL(`v1/entries/${index}/time`)).catch((e) => ({error: e})),
    wantsEnvelope ? getBytes(apiURL(`v1/entries/${index}/envelope`)).catch((e) => ({error: e})) : null,
    getText(apiURL(`v1/entries/${index}/receipt`)).catch((e) => ({error: e})),
    latestCheckpoint(),
    state.logInfo ? null : loadLogInfo(),
  ]);
  if (!ctx.alive()) return;

  // Envelope and Statement (checked against the leaf before anything of it is shown as such).
  let envInfo = null;
  let envError = null;
  const envBytes = envelope instanceof Uint8Array ? envelope : null;
  if (wantsEnvelope) {
    if (!envBytes) envError = envelope.error;
    else if (secure()) {
      try { envInfo = await V.checkEnvelope(info, envBytes); } catch (e) { envError = e; }
    } else {
      try {
        const env = JSON.parse(utf8.decode(envBytes));
        const payload = V.b64decode(env.payload);
        let statement = null;
        try { statement = JSON.parse(utf8.decode(payload)); } catch { statement = null; }
        envInfo = {payloadType: env.payloadType, payload, statement, unchecked: true};
      } catch (e) { envError = e; }
    }
  }

  // Summary
  const loggedMinute = timeDoc && typeof timeDoc.logged_minute === "number" ? timeDoc.logged_minute : null;
  const summary = section("Entry", {id: "entry-summary"});
  const rows = [
    ["Index", el("span", {class: "num", id: "entry-index"}, String(index))],
    ["Kind", kindLabel(info.kind)],
    ["Entry size", [el("span", {id: "entry-size", class: "num"}, String(leafBytes.length)), " bytes"]],
  ];
  const payloadType = envInfo?.payloadType ?? info.record?.payload_type ?? null;
  if (payloadType) rows.push(["Payload type", el("code", {id: "payload-type", class: "wrap-any"}, String(payloadType))]);
  rows.push(["Logged", timeDoc.error
    ? el("span", {class: "muted"}, `unknown (${errCode(timeDoc.error)})`)
    : loggedMinute !== null
      ? [el("span", {id: "logged-time"}, timeEl(loggedMinute, {seconds: false, relative: true})), el("span", {class: "muted small"}, " (the log's own clock, to the minute; not signed)")]
      : el("span", {class: "muted", id: "logged-time"}, "not recorded")]);
  if (secure()) {
    try { rows.push(["Leaf hash", hashEl(b64(await V.leafHash(leafBytes)), "leaf hash")]); } catch { /* shown by the checks */ }
  }
  if (info.kind === "dsse" && info.record && typeof info.record.attestation === "string") {
    rows.push(["Envelope digest", hashEl(`sha256:${info.record.attestation}`, "envelope digest")]);
  }
  summary.append(dl(rows));
  if (info.kind === "unparsed") summary.append(errorBox(info.error, "The leaf could not be parsed"));
  view.append(summary);

  // Kind-specific content
  if (info.kind === "hashedrekord" || (info.kind === "rekor" && !envBytes)) {
    const subs = subjectStrings(info);
    view.append(el("section", {class: "card", id: "statement", "aria-labelledby": "digest-h"},
      el("h2", {id: "digest-h"}, "Signed artifact digest"),
      note(info.kind === "rekor" ? "A Rekor v2 hashedrekord entry: a signature over an artifact's digest." : "A signature over an artifact's digest (hashedrekord)."),
      dl(subs.map((s) => ["Digest", [hashEl(s, "artifact digest"), " ",
        link(`#/search?${new URLSearchParams({field: "subject", q: s})}`, "entries", {class: "small"})]])),
      info.kind === "rekor" && envError && envError.status !== 404 ? errorBox(envError, "The entry's envelope could not be fetched") : null));
  }
  if (wantsEnvelope && envBytes) {
    if (envInfo) {
      view.append(renderStatement(envInfo.statement, envInfo.payloadType));
      if (envInfo.statement && typeof envInfo.statement === "object") view.append(renderPredicate(envInfo.statement));
      else if (envInfo.payload) {
        const p = toBytes(envInfo.payload);
        view.append(section("Payload", {}, note(`${p.length} bytes of ${String(envInfo.payloadType)}`), hexdump(p)));
      }
    } else {
      view.append(el("section", {class: "card", id: "statement"}, el("h2", null, "In-toto Statement"),
        errorBox(envError, "The envelope does not match the entry, so its Statement is not shown")));
    }
  } else if (wantsEnvelope && info.kind === "dsse") {
    view.append(el("section", {class: "card", id: "statement"}, el("h2", null, "In-toto Statement"),
      errorBox(envError, "The envelope could not be fetched")));
  }
  if (info.kind === "raw" || info.kind === "unparsed") {
    view.append(section(info.kind === "raw" ? "Raw entry" : "Entry bytes", {id: "raw-entry"},
      note(info.kind === "raw" ? "A raw entry: bytes logged as given, with no format and no checked signature." : "The bytes of the entry."),
      hexdump(leafBytes)));
  }

  // Signers
  const srows = signerRows(info);
  const signers = el("ul", {id: "signers", class: "signers plain"});
  for (const s of srows) {
    signers.append(el("li", {class: "signer"},
      hashEl(s.signer, "signer"),
      el("span", {class: "signer-alg"}, s.alg ?? "key type unknown"),
      link(`#/search?${new URLSearchParams({field: "signer", q: s.signer})}`, "Entries by this signer", {class: "small"})));
  }
  const signersCard = section("Signers", {id: "signers-section"});
  if (srows.length) signersCard.append(signers);
  else signersCard.append(signers, note("This entry records no signer."));
  view.append(signersCard);

  // Downloads
  const downloads = el("ul", {id: "downloads", class: "downloads plain"});
  downloads.append(el("li", null, blobLink(leafBytes, "application/octet-stream", `entry-${index}.bin`, "leaf", "Leaf bytes"),
    el("span", {class: "muted small"}, ` ${leafBytes.length} bytes`)));
  if (envBytes) downloads.append(el("li", null, blobLink(envBytes, "application/json", `entry-${index}.envelope.json`, "envelope", "DSSE envelope"), el("span", {class: "muted small"}, " JSON")));
  if (typeof receipt === "string") downloads.append(el("li", null, blobLink(new TextEncoder().encode(receipt), "application/json", `entry-${index}.receipt.json`, "receipt", "Receipt"), el("span", {class: "muted small"}, " JSON, verified below")));
  else downloads.append(el("li", null, el("a", {href: apiURL(`v1/entries/${index}/receipt`), "data-kind": "receipt", class: "download"}, "Receipt"), " ", errorBox(receipt.error, "Receipt")));
  if (info.kind === "rekor") {
    // A direct link, not fetched ahead: each bundle asks the log's TSA for a fresh timestamp.
    downloads.append(el("li", null, el("a", {href: apiURL(`v1/entries/${index}/sigstore-bundle`), "data-kind": "bundle",
      class: "download", download: `entry-${index}.sigstore.json`}, "Sigstore bundle"),
    el("span", {class: "muted small"}, " v0.3, made when you download it, with a fresh timestamp")));
  }
  view.append(section("Downloads", {id: "downloads-section"}, downloads));

  // Verification
  if (!secure()) {
    setBadge(b, "unavailable");
    verifyCard.append(note("Browsers only offer WebCrypto on secure pages (HTTPS or localhost): nothing on this page was checked."));
    return;
  }
  const items = [];
  let notCovered = false;
  const cpItem = checkItem(checks, "checkpoint", "The latest checkpoint is signed by the log's keys" + (state.policy?.witnesses?.length ? " and cosigned by a quorum of witnesses" : ""));
  if (cp.status === "verified") cpItem.pass(` (size ${cp.checkpoint.size})`);
  else cpItem.fail(cp.error);
  items.push(cp.status === "verified");

  const incItem = checkItem(checks, "inclusion", "The entry's bytes are in the tree of that checkpoint (proof computed from tiles)");
  if (!state.policy) {
    incItem.fail(noPolicyError());
    items.push(false);
  } else if (!cp.text) {
    incItem.fail(cp.error);
    items.push(false);
  } else {
    try {
      const r = await V.verifyEntry({index, entry: leafBytes, noteText: cp.text, policy: state.policy, tiles: fetchTile, now: nowSeconds()});
      incItem.pass(` (index ${index} of ${r.checkpoint.checkpoint.size})`);
      items.push(true);
    } catch (e) {
      incItem.fail(e);
      if (e.code === "index_not_covered") notCovered = true;
      items.push(false);
    }
  }

  if (wantsEnvelope && (envBytes || info.kind === "dsse")) {
    const envItem = checkItem(checks, "envelope", info.kind === "rekor"
      ? "The stored DSSE envelope is the one the entry logs, and its signature verifies"
      : "The stored DSSE envelope recomputes to the entry's leaf");
    if (envInfo) { envItem.pass(); items.push(true); } else { envItem.fail(envError); items.push(false); }
  }

  const rcItem = checkItem(checks, "receipt", "The receipt offered for download verifies (its own checkpoint and inclusion proof)");
  if (typeof receipt !== "string") {
    rcItem.fail(receipt.error);
    items.push(false);
  } else if (!state.policy) {
    rcItem.fail(noPolicyError());
    items.push(false);
  } else {
    try {
      const doc = JSON.parse(receipt);
      const vc = await checkReceipt(doc, index, leafBytes);
      rcItem.pass(` (checkpoint size ${vc.checkpoint.size})`);
      items.push(true);
    } catch (e) {
      rcItem.fail(e instanceof SyntaxError ? receiptError("the receipt is not JSON", "malformed_receipt") : e);
      items.push(false);
    }
  }

  const rawItem = checkItem(checks, "raw-entries", "The log does not take unchecked raw entries, or the policy allows it");
  if (!state.logInfo) {
    rawItem.fail(state.logInfoError ?? {code: "unknown", message: "v1/log could not be read"});
    items.push(false);
  } else if (state.logInfo.raw_entries_allowed && !state.policy?.allow_raw_log) {
    rawItem.fail({code: "raw_log", message: "the log accepts raw entries, which can imitate any leaf, and the policy does not allow such a log"});
    items.push(false);
  } else {
    rawItem.pass(state.logInfo.raw_entries_allowed ? " (raw entries allowed by the policy)" : "");
    items.push(true);
  }

  const failedChecks = [...checks.querySelectorAll("li[data-ok=false]")];
  if (items.every(Boolean)) setBadge(b, "verified");
  else if (failedChecks.length === 1 && failedChecks[0].dataset.check === "inclusion" && notCovered) {
    // The log has the entry but its latest (cosigned) checkpoint does not cover it yet.
    setBadge(b, "unavailable", "Not yet covered by the checkpoint");
  } else {
    const first = failedChecks[0];
    const more = failedChecks.length - 1;
    setBadge(b, "failed", `${first.dataset.check}: ${first.dataset.reason || "failed"}${more ? ` (and ${more} more failed check${more === 1 ? "" : "s"})` : ""}`);
  }
}
