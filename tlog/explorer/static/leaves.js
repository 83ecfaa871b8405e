// Leaves: parsing (never throwing), what a leaf says of its subjects and signers, and its
// inclusion proven from tiles.

import * as V from "./verify.js";

export async function parseLeafSafe(bytes) {
  try {
    return await V.parseLeaf(bytes);
  } catch (e) {
    return {kind: "unparsed", record: null, signers: [], subjects: [], predicateType: null, error: e};
  }
}

export function subjectStrings(info) {
  const out = [];
  for (const s of info.subjects || []) {
    if (!s || typeof s !== "object") continue;
    for (const [alg, hex] of Object.entries(s)) out.push(`${alg}:${hex}`);
  }
  return out;
}

/** Does the (parsed, not yet proven) leaf say what the search matched? Only where the leaf
 * alone can tell: a Rekor v2 DSSE entry's Statement lives in its envelope, and a DSSE leaf
 * may copy only some of a Statement's subjects. */
export function leafMatchesTerm(info, field, term) {
  if (!info || !term) return true;
  if (field === "signer") {
    return !(info.signers && info.signers.length) || info.signers.includes(term);
  }
  if (info.kind === "hashedrekord" && field === "subject") return subjectStrings(info).includes(term);
  if (info.kind !== "dsse" || !info.record || !info.record.statement) return true;
  const st = info.record.statement;
  if (field === "predicate_type") return st.predicate_type === term;
  if (field === "subject") {
    const complete = Array.isArray(st.subjects) && st.subjects_total <= st.subjects.length;
    return !complete || subjectStrings(info).includes(term);
  }
  return true;
}

/** Prove a leaf's inclusion at `index` in the verified checkpoint, from tiles. */
export async function proveLeaf(index, leafBytes, checkpoint, reader) {
  const lh = await V.leafHash(leafBytes);
  const proof = await reader.inclusionProof(index, checkpoint.size);
  const ok = await V.verifyInclusion(index, checkpoint.size, lh, proof, checkpoint.root);
  if (ok === false) {
    const e = new Error("the inclusion proof does not lead to the checkpoint's root");
    e.code = "inclusion_mismatch";
    throw e;
  }
  return lh;
}

/** Minimal DER reading of a SubjectPublicKeyInfo: the key algorithm, for display only. */
function spkiAlgorithm(der) {
  try {
    const readTLV = (buf, off) => {
      const tag = buf[off];
      let len = buf[off + 1];
      let hdr = 2;
      if (len & 0x80) {
        const n = len & 0x7f;
        if (n < 1 || n > 4) throw new Error("bad length");
        len = 0;
        for (let i = 0; i < n; i++) len = len * 256 + buf[off + 2 + i];
        hdr += n;
      }
      if (off + hdr + len > buf.length) throw new Error("truncated");
      return {tag, start: off + hdr, end: off + hdr + len};
    };
    const hexOf = (buf, a, b) => Array.from(buf.subarray(a, b), (x) => x.toString(16).padStart(2, "0")).join("");
    const top = readTLV(der, 0);
    const algSeq = readTLV(der, top.start);
    const oid = readTLV(der, algSeq.start);
    const oidHex = hexOf(der, oid.start, oid.end);
    if (oidHex === "2b6570") return "Ed25519";
    if (oidHex === "2a8648ce3d0201") {
      const param = readTLV(der, oid.end);
      const curve = hexOf(der, param.start, param.end);
      return {"2a8648ce3d030107": "ECDSA P-256", "2b81040022": "ECDSA P-384", "2b81040023": "ECDSA P-521"}[curve] ?? "ECDSA";
    }
    if (oidHex === "2a864886f70d010101") {
      const bits = readTLV(der, algSeq.end);
      const rsaSeq = readTLV(der, bits.start + 1);
      const mod = readTLV(der, rsaSeq.start);
      let start = mod.start;
      while (start < mod.end && der[start] === 0) start++;
      const n = (mod.end - start) * 8 - (Math.clz32(der[start]) - 24);
      return `RSA ${Math.round(n / 8) * 8} bits`;
    }
    return `OID ${oidHex}`;
  } catch {
    return null;
  }
}

const KEY_DETAILS = {
  PKIX_ECDSA_P256_SHA_256: "ECDSA P-256, SHA-256",
  PKIX_ECDSA_P384_SHA_384: "ECDSA P-384, SHA-384",
  PKIX_ECDSA_P521_SHA_512: "ECDSA P-521, SHA-512",
  PKIX_RSA_PKCS1V15_2048_SHA256: "RSA 2048 PKCS#1 v1.5, SHA-256",
  PKIX_RSA_PKCS1V15_3072_SHA256: "RSA 3072 PKCS#1 v1.5, SHA-256",
  PKIX_RSA_PKCS1V15_4096_SHA256: "RSA 4096 PKCS#1 v1.5, SHA-256",
};

/** [{signer, key (base64 DER) | null, alg | null}] of a parsed leaf. */
export function signerRows(info) {
  const rows = [];
  const rec = info.record;
  const keyAlg = (k) => {
    if (typeof k !== "string") return null;
    try { return spkiAlgorithm(V.b64decode(k)); } catch { return null; }
  };
  if (info.kind === "dsse" && rec && Array.isArray(rec.signatures)) {
    for (const s of rec.signatures) rows.push({signer: s.signer, key: s.key, alg: keyAlg(s.key)});
  } else if (info.kind === "hashedrekord" && rec && rec.signature) {
    rows.push({signer: rec.signature.signer, key: rec.signature.key, alg: keyAlg(rec.signature.key)});
  } else if (info.kind === "rekor" && rec) {
    const sig = rec.spec?.hashedRekordV002?.signature;
    const key = sig?.verifier?.publicKey?.rawBytes ?? null;
    const details = info.rekor?.keyDetails ?? sig?.verifier?.keyDetails;
    const alg = KEY_DETAILS[details] ?? (typeof details === "string" ? details : keyAlg(key));
    for (const s of info.signers || []) rows.push({signer: s, key, alg});
  }
  if (!rows.length) for (const s of info.signers || []) rows.push({signer: s, key: null, alg: null});
  return rows.filter((r) => typeof r.signer === "string");
}
