// An entry's receipt checked against the entry: its leaf, its checkpoint and its inclusion proof.

import * as V from "./verify.js";
import {state} from "./state.js";
import {toBytes, b64, bytesEqual} from "./format.js";
import {nowSeconds, policyProblem} from "./checkpoint.js";

export function receiptError(message, code = "receipt_mismatch", evidence) {
  return Object.assign(new Error(message), {code, evidence});
}

export async function checkReceipt(receipt, index, leafBytes) {
  if (!receipt || typeof receipt !== "object") throw receiptError("the receipt is not a JSON object", "malformed_receipt");
  const pol = state.policy;
  if (receipt.origin !== pol.origin) throw receiptError(`the receipt is for log ${JSON.stringify(receipt.origin)}, not ${pol.origin}`, "origin_mismatch");
  if (receipt.index !== index) throw receiptError(`the receipt is for index ${receipt.index}, not ${index}`, "index_mismatch");
  let leaf;
  try { leaf = V.b64decode(String(receipt.leaf)); } catch { throw receiptError("the receipt's leaf is not base64", "malformed_receipt"); }
  if (!bytesEqual(leaf, leafBytes)) throw receiptError("the receipt's leaf differs from the entry's bytes");
  const lh = toBytes(await V.leafHash(leaf));
  if (typeof receipt.leaf_hash !== "string" || b64(lh) !== receipt.leaf_hash) {
    throw receiptError("the receipt's leaf_hash is not the hash of its leaf", "leaf_hash_mismatch", {computed: b64(lh), receipt: receipt.leaf_hash});
  }
  const vc = await V.verifyCheckpoint(String(receipt.checkpoint), pol, {now: nowSeconds()});
  const problem = policyProblem(vc, pol, {age: true});
  if (problem) throw problem;
  const proof = receipt.inclusion_proof;
  if (!proof || !Array.isArray(proof.hashes)) throw receiptError("the receipt has no inclusion proof", "malformed_receipt");
  if (Number(proof.tree_size) !== Number(vc.checkpoint.size)) {
    throw receiptError(`the proof is for size ${proof.tree_size}, the receipt's checkpoint is size ${vc.checkpoint.size}`, "size_mismatch");
  }
  const hashes = proof.hashes.map((h) => V.b64decode(String(h)));
  const ok = await V.verifyInclusion(index, Number(vc.checkpoint.size), lh, hashes, vc.checkpoint.root);
  if (ok === false) throw receiptError("the receipt's inclusion proof does not lead to its checkpoint's root", "inclusion_mismatch");
  return vc;
}
