// The consistency page (#/consistency): an old tree (a size or a pasted checkpoint) proven a
// prefix of a newer one.

import * as V from "./verify.js";
import {state} from "./state.js";
import {el, hashEl, copyButton, dl, note} from "./dom.js";
import {isCanonicalDecimal, toBytes, b64, bytesEqual} from "./format.js";
import {apiURL, getJSON, tileReader} from "./net.js";
import {errorBox, badge, setBadge, failBadge, secure, checkItem} from "./badges.js";
import {nowSeconds, parseUnverified, latestCheckpoint} from "./checkpoint.js";
import {go} from "./router.js";

export async function renderConsistency(view, {params}, ctx) {
  view.append(el("h1", null, "Consistency"),
    el("p", {class: "lede"}, "Check that a tree you saw earlier is a prefix of a later one: the log only ever appended. Give the old tree as a size or paste a checkpoint you kept; the new one defaults to the latest verified checkpoint."));
  const oldParam = params.get("old");
  const newParam = params.get("new");
  const stash = state.consistencyStash;
  const oldNote = stash && stash.old === oldParam ? stash.oldNote : "";
  const newNote = stash && stash.new === (newParam ?? "") ? stash.newNote : "";

  const oldSize = el("input", {id: "old-size", name: "old", type: "text", inputmode: "numeric", pattern: "[0-9]*", autocomplete: "off", value: oldParam ?? "", "aria-describedby": "old-help"});
  const newSize = el("input", {id: "new-size", name: "new", type: "text", inputmode: "numeric", pattern: "[0-9]*", autocomplete: "off", value: newParam ?? "", placeholder: "latest", "aria-describedby": "new-help"});
  const oldTa = el("textarea", {id: "old-checkpoint", name: "old-checkpoint", rows: "5", spellcheck: "false", "aria-describedby": "old-help"});
  oldTa.value = oldNote || "";
  const newTa = el("textarea", {id: "new-checkpoint", name: "new-checkpoint", rows: "5", spellcheck: "false", "aria-describedby": "new-help"});
  newTa.value = newNote || "";
  const formMsg = el("div", {class: "form-messages"});
  const form = el("form", {id: "consistency-form", class: "consistency-form", novalidate: true},
    el("fieldset", null, el("legend", null, "Old tree"),
      el("div", {class: "field"}, el("label", {for: "old-size"}, "Old tree size"), oldSize),
      el("div", {class: "field"}, el("label", {for: "old-checkpoint"}, "or paste an old checkpoint"), oldTa),
      el("p", {id: "old-help", class: "help"}, "A pasted checkpoint must be signed by the log's keys, and its root must be the one the proof leads to.")),
    el("fieldset", null, el("legend", null, "New tree"),
      el("div", {class: "field"}, el("label", {for: "new-size"}, "New tree size"), newSize),
      el("div", {class: "field"}, el("label", {for: "new-checkpoint"}, "or paste a newer checkpoint"), newTa),
      el("p", {id: "new-help", class: "help"}, "Empty: the latest checkpoint, verified now.")),
    el("div", {class: "form-actions"}, el("button", {type: "submit", class: "primary"}, "Check consistency")),
    formMsg);
  view.append(form);

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    formMsg.replaceChildren();
    const bad = (m) => { formMsg.replaceChildren(el("p", {class: "error form-error", role: "alert"}, m)); };
    let o = oldSize.value.trim();
    let n = newSize.value.trim();
    const oText = oldTa.value.trim();
    const nText = newTa.value.trim();
    if (oText) {
      const p = parseUnverified(`${oText}\n`);
      if (!p.checkpoint) { bad("The old checkpoint is not a signed checkpoint note."); oldTa.focus(); return; }
      if (o && o !== String(p.checkpoint.size)) { bad(`The old size ${o} differs from the pasted checkpoint's size ${p.checkpoint.size}.`); oldSize.focus(); return; }
      o = String(p.checkpoint.size);
    }
    if (nText) {
      const p = parseUnverified(`${nText}\n`);
      if (!p.checkpoint) { bad("The new checkpoint is not a signed checkpoint note."); newTa.focus(); return; }
      if (n && n !== String(p.checkpoint.size)) { bad(`The new size ${n} differs from the pasted checkpoint's size ${p.checkpoint.size}.`); newSize.focus(); return; }
      n = String(p.checkpoint.size);
    }
    if (!isCanonicalDecimal(o)) { bad("Give the old tree size (a whole number) or paste the old checkpoint."); oldSize.focus(); return; }
    if (n && !isCanonicalDecimal(n)) { bad("The new tree size is a whole number (or leave it empty for the latest)."); newSize.focus(); return; }
    state.consistencyStash = {old: o, new: n, oldNote: oText ? `${oText}\n` : "", newNote: nText ? `${nText}\n` : ""};
    const qs = new URLSearchParams({old: o});
    if (n) qs.set("new", n);
    go(`#/consistency?${qs}`);
  });

  if (oldParam === null) return;
  const b = badge("consistency-badge");
  const checks = el("ul", {id: "consistency-checks", class: "checks plain"});
  const out = el("div", {class: "result-body"});
  view.append(el("section", {class: "card", id: "consistency-result", "aria-labelledby": "cres-h"},
    el("h2", {id: "cres-h"}, "Result"),
    el("div", {class: "badge-row", "aria-live": "polite"}, b), checks, out));

  const fail = (e) => { failBadge(b, e); out.append(errorBox(e)); };
  if (!isCanonicalDecimal(oldParam) || (newParam !== null && newParam !== "" && !isCanonicalDecimal(newParam))) {
    fail({code: "bad_parameter", message: "sizes are canonical decimal numbers"});
    return;
  }
  const oldN = Number(oldParam);
  const latest = await latestCheckpoint();
  if (!ctx.alive()) return;
  if (latest.status === "unavailable" || !secure()) {
    setBadge(b, "unavailable");
    out.append(note("Browsers only offer WebCrypto on secure pages (HTTPS or localhost): nothing can be checked here."));
    return;
  }
  const cpItem = checkItem(checks, "latest-checkpoint", "The latest checkpoint verifies with the trust policy");
  if (latest.status !== "verified") {
    cpItem.fail(latest.error);
    fail(latest.error);
    return;
  }
  cpItem.pass(` (size ${latest.checkpoint.size})`);
  const latestSize = Number(latest.checkpoint.size);
  const reader = tileReader(latestSize);

  const pasted = async (text, name, label) => {
    // A pasted checkpoint must carry the log's signatures; its age and cosignatures are shown
    // but not required (it is old by design, and the log's own signature is what binds it).
    const it = checkItem(checks, name, label);
    try {
      const r = await V.verifyCheckpoint(text, state.policy, {now: nowSeconds()});
      const cos = (r.cosignatures || []).filter((c) => c.verified && !c.future).length;
      it.pass(` (size ${r.checkpoint.size}; ${cos} witness cosignature${cos === 1 ? "" : "s"})`);
      return r.checkpoint;
    } catch (e) {
      it.fail(e);
      throw e;
    }
  };
  const proofHashes = (p) => (Array.isArray(p.hashes) ? p.hashes : []).map((h) => V.b64decode(String(h)));
  const fetchProof = async (o, n) => {
    const p = await getJSON(apiURL(`v1/proof/consistency?${new URLSearchParams({old: String(o), new: String(n)})}`));
    if (Number(p.old_size) !== o || Number(p.new_size) !== n) {
      throw Object.assign(new Error(`the proof is for ${p.old_size} → ${p.new_size}, not ${o} → ${n}`), {code: "proof_mismatch"});
    }
    return proofHashes(p);
  };

  try {
    // The new tree: a pasted checkpoint, the latest, or a size proven against the latest.
    let newN;
    let newRoot;
    if (newNote) {
      const c = await pasted(newNote, "new-checkpoint", "The pasted new checkpoint is signed by the log's keys");
      newN = Number(c.size);
      newRoot = c.root;
    } else if (newParam === null || newParam === "" || Number(newParam) === latestSize) {
      newN = latestSize;
      newRoot = latest.checkpoint.root;
    } else {
      newN = Number(newParam);
      if (newN > latestSize) throw Object.assign(new Error(`the new size ${newN} is beyond the latest verified checkpoint (${latestSize})`), {code: "size_out_of_range"});
      const it = checkItem(checks, "new-root", `The root of the tree of size ${newN}, from tiles, is consistent with the latest checkpoint`);
      try {
        newRoot = await reader.subtreeHash(0, newN);
        await V.verifyConsistency(newN, latestSize, await fetchProof(newN, latestSize), latest.checkpoint.root, newRoot);
        it.pass();
      } catch (e) { it.fail(e); throw e; }
    }
    if (oldN > newN) throw Object.assign(new Error(`the old size ${oldN} is larger than the new size ${newN}`), {code: "size_out_of_range"});

    // What the old root should be: the pasted old checkpoint's, or the tiles'.
    let expected;
    let expectedFrom;
    if (oldNote) {
      const c = await pasted(oldNote, "old-checkpoint", "The pasted old checkpoint is signed by the log's keys");
      if (Number(c.size) !== oldN) throw Object.assign(new Error(`the pasted checkpoint is size ${c.size}, not ${oldN}`), {code: "size_mismatch"});
      expected = c.root;
      expectedFrom = "the pasted old checkpoint";
    } else {
      expectedFrom = "the tiles";
      if (oldN > latestSize) throw Object.assign(new Error(`the tiles of the latest checkpoint (size ${latestSize}) do not reach size ${oldN}`), {code: "size_out_of_range"});
      expected = await reader.subtreeHash(0, oldN);
    }

    // The proof: the old root it commits to (a power-of-two old size leaves it implicit, so it
    // is then checked against the expected root instead), compared with the expected one.
    const proofItem = checkItem(checks, "consistency", `The log's consistency proof from size ${oldN} to ${newN} leads to the new root`);
    let proven = null;
    let hashes;
    try {
      hashes = await fetchProof(oldN, newN);
      try {
        proven = await V.verifyConsistency(oldN, newN, hashes, newRoot, null);
      } catch (e) {
        if (e.code !== "old_root_required") throw e;
      }
      if (proven === null) proven = await V.verifyConsistency(oldN, newN, hashes, newRoot, expected);
      proofItem.pass(` (${hashes.length} hash${hashes.length === 1 ? "" : "es"})`);
    } catch (e) {
      proofItem.fail(e);
      throw e;
    }
    const cmpItem = checkItem(checks, "old-root", `The old root it proves equals the root of ${expectedFrom}`);
    out.append(dl([
      ["Old size", String(oldN)],
      ["New size", String(newN)],
      ["New root", hashEl(b64(newRoot), "new root")],
      ["Old root (proven)", el("span", {class: "hash hash-full"}, el("code", {id: "old-root", title: b64(proven)}, b64(proven)), copyButton(b64(proven), "old root"))],
      [`Old root (${expectedFrom})`, hashEl(b64(expected), "expected old root", {full: true})],
    ]));
    if (!bytesEqual(toBytes(proven), toBytes(expected))) {
      const e = Object.assign(new Error(`the proven old root differs from the root of ${expectedFrom}`), {
        code: "root_mismatch", evidence: {proven: b64(proven), expected: b64(expected)},
      });
      cmpItem.fail(e);
      throw e;
    }
    cmpItem.pass();
    setBadge(b, "verified");
    out.append(el("p", {class: "success-note"}, `The tree of size ${newN} extends the tree of size ${oldN}: the log only appended.`));
  } catch (e) {
    if (!ctx.alive()) return;
    fail(e);
  }
}
