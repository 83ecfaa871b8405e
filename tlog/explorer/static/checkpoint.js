// Checkpoints: the latest one fetched and verified with the trust policy (signatures, witness
// quorum, freshness), or its unverified body when it cannot be.

import * as V from "./verify.js";
import {state} from "./state.js";
import {fmtDuration} from "./format.js";
import {tilesURL, getText} from "./net.js";
import {secure, noPolicyError} from "./badges.js";

export const nowSeconds = () => Math.floor(Date.now() / 1000);

/** The unverified body of a checkpoint note, for display when it cannot be verified. */
export function parseUnverified(text) {
  try {
    const n = V.parseNote(text);
    const cp = V.parseCheckpoint(n.body ?? n.text ?? n);
    return {note: n, checkpoint: cp};
  } catch {
    return {note: null, checkpoint: null};
  }
}

/** Fetch and verify the latest checkpoint: {status, text, result?, checkpoint?, error?}. */
export async function latestCheckpoint() {
  let text;
  try {
    text = await getText(tilesURL("checkpoint"));
  } catch (e) {
    return {status: "failed", error: e, text: null, checkpoint: null};
  }
  return checkCheckpoint(text);
}

async function checkCheckpoint(text, policy = state.policy) {
  if (!secure()) return {status: "unavailable", text, ...parseUnverified(text)};
  if (!policy) return {status: "failed", text, error: noPolicyError(), ...parseUnverified(text)};
  let result;
  try {
    result = await V.verifyCheckpoint(text, policy, {now: nowSeconds()});
  } catch (e) {
    return {status: "failed", text, error: e, ...parseUnverified(text)};
  }
  const problem = policyProblem(result, policy, {age: true});
  return {status: problem ? "failed" : "verified", text, result, checkpoint: result.checkpoint, note: result.note, error: problem};
}

/** verify.js reports quorum and freshness without throwing: what the policy requires of them. */
export function policyProblem(result, policy, {age}) {
  if (!result.quorumMet) {
    const got = (result.cosignatures || []).filter((c) => c.verified && !c.future).length;
    return Object.assign(new Error(`${got} of the ${policy.witness_quorum} witness cosignatures the policy requires`), {
      code: "quorum_not_met",
      evidence: {cosignatures: (result.cosignatures || []).map((c) => ({name: c.name, time: c.time, verified: c.verified, future: c.future}))},
    });
  }
  if (age && result.fresh === false) {
    return Object.assign(new Error(`the checkpoint's cosignatures are ${result.age === null ? "missing" : fmtDuration(Math.round(result.age))} old, more than the policy's ${fmtDuration(policy.max_age_seconds)}`), {
      code: "stale_checkpoint",
      evidence: {cosigned_at: result.cosignedAt, max_age_seconds: policy.max_age_seconds},
    });
  }
  return null;
}
