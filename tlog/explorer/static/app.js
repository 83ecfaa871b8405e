// The log explorer: a single-page app over the log's documented JSON API and its tiles.
//
// Everything it shows that can be proven is proven here, in the browser, with verify.js
// (WebCrypto): checkpoints with the trust policy's keys and witnesses, inclusion of every leaf
// shown with proofs computed from the tiles (never the API's own proofs), consistency, receipts.
// Nothing is fetched from outside the log: config.json says where the API and tiles are.
//
// Safety: API data (Statements are attacker-controlled) only ever reaches the page through
// textContent and attributes set one by one; links made from data must parse as http(s) URLs.
//
// DOM contract for tests: every badge is `.badge[data-state]` (pending | verified | failed |
// unavailable); `document.body.dataset.ready` is "" while a route renders and "1" once it and
// all its badges have settled.

import * as V from "./verify.js";

const PAGE_SIZE = 20;
const TIMELINE_PAGE_SIZE = 100;
const PROOF_CONCURRENCY = 6;
const HEXDUMP_LIMIT = 4096;
const PREDICATE_NODE_BUDGET = 4000;
const PREDICATE_MAX_DEPTH = 24;
const PIN_PREFIX = "tlog-explorer/pin/";
const SVG_NS = "http://www.w3.org/2000/svg";

const SEARCH_FIELDS = [
  ["subject", "Subject digest"],
  ["signer", "Signer key"],
  ["predicate_type", "Predicate type"],
  ["index", "Entry index"],
];
const FIELD_LABEL = Object.fromEntries(SEARCH_FIELDS);
const FIELD_PLACEHOLDER = {
  subject: "sha256:1368449e…",
  signer: "sha256:a050837d…",
  predicate_type: "https://slsa.dev/provenance/v1",
  index: "0",
};
const KIND_LABEL = {
  dsse: "DSSE attestation",
  hashedrekord: "Signed digest",
  rekor: "Rekor v2 entry",
  raw: "Raw bytes",
};
const BADGE_TEXT = {
  pending: "Verifying…",
  verified: "Verified in your browser",
  unavailable: "Cannot verify over plain HTTP",
};

const state = {
  api: "",
  tiles: "",
  policy: null,
  trust: null, // {source: "build"} | {source: "tofu", firstSeen, pinned: bool}
  keyChange: null, // {pinned: [vkey], served: [vkey], firstSeen}
  trustError: null,
  logInfo: null,
  logInfoError: null,
  configNote: null,
  routeToken: 0,
  firstRoute: true,
  cleanups: [],
  consistencyStash: null,
  configPolicy: null,
};

// ---------------------------------------------------------------- DOM helpers

function el(tag, attrs, ...kids) {
  const node = tag.startsWith("svg:")
    ? document.createElementNS(SVG_NS, tag.slice(4))
    : document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "text") node.textContent = String(v);
      else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
  }
  appendKids(node, kids);
  return node;
}

function appendKids(node, kids) {
  for (const k of kids.flat(Infinity)) {
    if (k === null || k === undefined || k === false) continue;
    node.append(k instanceof Node ? k : String(k));
  }
  return node;
}

function $(sel, root = document) {
  return root.querySelector(sel);
}

function announce(text) {
  const a = $("#announcer");
  if (!a) return;
  a.textContent = "";
  setTimeout(() => { a.textContent = text; }, 30);
}

function shortHash(s) {
  const colon = s.indexOf(":");
  const head = colon > 0 && colon < 12 ? colon + 9 : 10;
  const tail = 6;
  return s.length > head + tail + 3 ? `${s.slice(0, head)}…${s.slice(-tail)}` : s;
}

/** A hash: truncated in monospace, the full value in its title, and a copy button. */
function hashEl(value, label = "hash", {full = false, id, display} = {}) {
  const s = String(value);
  return el("span", {class: full ? "hash hash-full" : "hash"},
    el("code", {title: s, id, "data-full": s}, full ? s : display ?? shortHash(s)),
    copyButton(s, label));
}

function copyButton(text, label) {
  const b = el("button", {type: "button", class: "copy", title: `Copy ${label}`, "aria-label": `Copy ${label}`});
  b.append(el("span", {class: "copy-text", "aria-hidden": "true"}, "Copy"));
  b.addEventListener("click", async () => {
    const ok = await copyText(text);
    b.classList.toggle("copied", ok);
    b.firstChild.textContent = ok ? "Copied" : "Failed";
    announce(ok ? `${label} copied to the clipboard` : `Could not copy the ${label}`);
    setTimeout(() => { b.firstChild.textContent = "Copy"; b.classList.remove("copied"); }, 1600);
  });
  return b;
}

async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch { /* fall through to the selection fallback */ }
  const ta = el("textarea", {class: "offscreen", readonly: true, "aria-hidden": "true", tabindex: "-1"});
  ta.value = text;
  document.body.append(ta);
  ta.select();
  let ok = false;
  try { ok = document.execCommand("copy"); } catch { ok = false; }
  ta.remove();
  return ok;
}

function link(href, text, attrs = {}) {
  return el("a", {href, ...attrs}, text);
}

/** An http(s) URL from data, or null: the only links made from API data. */
function safeHttpUrl(s) {
  if (typeof s !== "string" || s.length > 4096 || !/^https?:\/\//i.test(s)) return null;
  try {
    const u = new URL(s);
    return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
  } catch {
    return null;
  }
}

function externalLink(url, text) {
  return el("a", {href: url, rel: "noopener noreferrer nofollow", class: "ext"}, text ?? url);
}

function dl(rows, attrs = {}) {
  const list = el("dl", {class: "kv", ...attrs});
  for (const row of rows) {
    if (!row) continue;
    const [term, value, ddAttrs] = row;
    list.append(el("dt", null, term), el("dd", ddAttrs ?? null, value));
  }
  return list;
}

function section(title, attrs = {}, ...kids) {
  const hid = `h-${Math.random().toString(36).slice(2, 9)}`;
  return el("section", {class: "card", "aria-labelledby": hid, ...attrs},
    el("h2", {id: hid}, title), ...kids);
}

function note(text, cls = "muted") {
  return el("p", {class: cls}, text);
}

// ---------------------------------------------------------------- formatting

function fmtUTC(unix, {seconds = true} = {}) {
  const d = new Date(unix * 1000);
  if (Number.isNaN(d.getTime())) return "invalid time";
  const iso = d.toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, seconds ? 19 : 16)} UTC`;
}

function fmtDay(unix) {
  return new Date(unix * 1000).toISOString().slice(0, 10);
}

function ago(unix, now = Date.now() / 1000) {
  const s = Math.round(now - unix);
  if (s < -5) return `${fmtDuration(-s)} in the future`;
  if (s < 45) return "just now";
  return `${fmtDuration(s)} ago`;
}

function fmtDuration(s) {
  if (s < 90) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 90) return `${m} min`;
  const h = Math.round(s / 3600);
  if (h < 48) return `${h} h`;
  return `${Math.round(s / 86400)} days`;
}

function timeEl(unix, {seconds = true, relative = false} = {}) {
  if (typeof unix !== "number" || !Number.isFinite(unix)) return el("span", {class: "muted"}, "unknown");
  const t = el("time", {datetime: new Date(unix * 1000).toISOString()}, fmtUTC(unix, {seconds}));
  if (!relative) return t;
  return el("span", {class: "when"}, t, el("span", {class: "ago"}, ` (${ago(unix)})`));
}

function fmtRate(x) {
  if (x === 0) return "0";
  if (x >= 100) return String(Math.round(x));
  return new Intl.NumberFormat("en", {maximumSignificantDigits: 2}).format(x);
}

function fmtInt(n) {
  return new Intl.NumberFormat("en").format(n);
}

function isCanonicalDecimal(s) {
  return typeof s === "string" && /^(0|[1-9][0-9]{0,15})$/.test(s) && Number.isSafeInteger(Number(s));
}

function toBytes(x) {
  if (x instanceof Uint8Array) return x;
  if (x instanceof ArrayBuffer) return new Uint8Array(x);
  if (ArrayBuffer.isView(x)) return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  if (typeof x === "string") return V.b64decode(x);
  throw new TypeError("not bytes");
}

function b64(x) {
  if (typeof x === "string") return x;
  return V.b64encode(toBytes(x));
}

function bytesEqual(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const utf8 = new TextDecoder("utf-8", {fatal: false});

// ---------------------------------------------------------------- fetching

class ApiError extends Error {
  constructor(status, code, message, url) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.url = url;
  }
}

function apiURL(path) {
  return new URL(path, state.api).href;
}

function tilesURL(path) {
  return new URL(path, state.tiles).href;
}

async function request(url, {accept} = {}) {
  let resp;
  try {
    resp = await fetch(url, {headers: accept ? {Accept: accept} : {}, credentials: "omit", cache: "no-cache"});
  } catch (e) {
    throw new ApiError(0, "network_error", `could not reach ${url}: ${e.message}`, url);
  }
  if (!resp.ok) {
    let code = `http_${resp.status}`;
    let message = resp.statusText || `HTTP ${resp.status}`;
    try {
      const j = await resp.json();
      if (j && typeof j === "object" && j.error && typeof j.error === "object") {
        if (typeof j.error.code === "string") code = j.error.code;
        if (typeof j.error.message === "string") message = j.error.message;
      }
    } catch { /* not a JSON error document */ }
    throw new ApiError(resp.status, code, message, url);
  }
  return resp;
}

async function getJSON(url) {
  const resp = await request(url, {accept: "application/json"});
  const text = await resp.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(resp.status, "bad_response", `${url} did not answer JSON`, url);
  }
}

async function getText(url) {
  return (await request(url)).text();
}

async function getBytes(url) {
  return new Uint8Array(await (await request(url)).arrayBuffer());
}

/** Tiles, cached for the session (tile contents at a given path never change). */
const tileCache = new Map();
function fetchTile(path) {
  let p = tileCache.get(path);
  if (!p) {
    p = getBytes(tilesURL(path));
    p.catch(() => tileCache.delete(path));
    if (tileCache.size > 4000) tileCache.clear();
    tileCache.set(path, p);
  }
  return p;
}

function tileReader(size) {
  return new V.TileReader(fetchTile, size);
}

/** Run `fn` over `items` with at most `n` in flight. */
async function pool(items, n, fn) {
  let next = 0;
  const workers = Array.from({length: Math.min(n, items.length)}, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  });
  await Promise.all(workers);
}

// ---------------------------------------------------------------- errors and badges

function errCode(e) {
  return (e && typeof e.code === "string" && e.code) || (e && e.name) || "error";
}

function errMessage(e) {
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
function errorBox(e, context) {
  return el("div", {class: "error", role: "alert"},
    el("p", null,
      context ? `${context}: ` : "",
      el("code", {class: "error-code"}, errCode(e)),
      e && e.status ? ` (HTTP ${e.status})` : "",
      " — ", errMessage(e)),
    evidenceEl(e));
}

function badge(id) {
  const b = el("span", {class: "badge", id});
  setBadge(b, "pending");
  return b;
}

function setBadge(b, st, reason) {
  b.dataset.state = st;
  if (st === "failed") b.textContent = `Verification failed: ${reason ?? "unknown error"}`;
  else b.textContent = reason && st !== "verified" ? reason : BADGE_TEXT[st];
}

function failBadge(b, e) {
  setBadge(b, "failed", errMessage(e));
  b.title = `${errCode(e)}: ${errMessage(e)}`;
}

function secure() {
  try {
    return !!V.canVerify();
  } catch {
    return false;
  }
}

function noPolicyError() {
  const e = new Error(state.trustError
    ? `no trust policy (${errMessage(state.trustError)})`
    : "no trust policy");
  e.code = "no_policy";
  return e;
}

// ---------------------------------------------------------------- checkpoints

const nowSeconds = () => Math.floor(Date.now() / 1000);

/** The unverified body of a checkpoint note, for display when it cannot be verified. */
function parseUnverified(text) {
  try {
    const n = V.parseNote(text);
    const cp = V.parseCheckpoint(n.body ?? n.text ?? n);
    return {note: n, checkpoint: cp};
  } catch {
    return {note: null, checkpoint: null};
  }
}

/** Fetch and verify the latest checkpoint: {status, text, result?, checkpoint?, error?}. */
async function latestCheckpoint() {
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
function policyProblem(result, policy, {age}) {
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

// ---------------------------------------------------------------- leaves

async function parseLeafSafe(bytes) {
  try {
    return await V.parseLeaf(bytes);
  } catch (e) {
    return {kind: "unparsed", record: null, signers: [], subjects: [], predicateType: null, error: e};
  }
}

function subjectStrings(info) {
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
function leafMatchesTerm(info, field, term) {
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
async function proveLeaf(index, leafBytes, checkpoint, reader) {
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
function signerRows(info) {
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

// ---------------------------------------------------------------- trust

function vkeyParts(vkey) {
  const m = /^([^+]+)\+([0-9a-f]{8})\+(.+)$/.exec(String(vkey));
  if (!m) return {name: String(vkey), keyId: "", alg: "unknown", key: ""};
  let alg = "unknown";
  try {
    const raw = V.b64decode(m[3]);
    alg = {1: "Ed25519", 2: "ECDSA P-256", 4: "cosignature/v1 (Ed25519)"}[raw[0]] ?? `type 0x${raw[0].toString(16)}`;
  } catch { /* leave unknown */ }
  return {name: m[1], keyId: m[2], alg, key: m[3]};
}

/** A verifier key: name+ID and the start of the key, the whole of it in the title and copy. */
function vkeyEl(vkey, label = "verifier key") {
  const p = vkeyParts(vkey);
  return hashEl(vkey, label, {display: p.key ? `${p.name}+${p.keyId}+${p.key.slice(0, 6)}…` : undefined});
}

function sameKeys(a, b) {
  const x = [...(a || [])].map(String).sort();
  const y = [...(b || [])].map(String).sort();
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

function readPin(origin) {
  try {
    const raw = localStorage.getItem(PIN_PREFIX + origin);
    if (!raw) return null;
    const pin = JSON.parse(raw);
    return pin && pin.policy && Array.isArray(pin.policy.log_keys) ? pin : null;
  } catch {
    return null;
  }
}

function writePin(origin, pin) {
  try {
    localStorage.setItem(PIN_PREFIX + origin, JSON.stringify(pin));
    return true;
  } catch {
    return false;
  }
}

function forgetPin(origin) {
  try { localStorage.removeItem(PIN_PREFIX + origin); } catch { /* nothing pinned */ }
}

async function loadConfig() {
  let cfg = null;
  try {
    const resp = await fetch("config.json", {cache: "no-cache", credentials: "omit"});
    if (resp.ok) cfg = await resp.json();
    else state.configNote = `config.json answered HTTP ${resp.status}; using the defaults`;
  } catch {
    state.configNote = "config.json could not be read; using the defaults";
  }
  if (!cfg || typeof cfg !== "object") cfg = {};
  const base = (u) => {
    const href = new URL(typeof u === "string" && u ? u : "../", location.href).href;
    return href.endsWith("/") ? href : `${href}/`;
  };
  state.api = base(cfg.api);
  state.tiles = base(cfg.tiles);
  state.configPolicy = cfg.policy && typeof cfg.policy === "object" ? cfg.policy : null;
}

async function loadTrust() {
  state.keyChange = null;
  state.trustError = null;
  if (state.configPolicy) {
    state.policy = state.configPolicy;
    state.trust = {source: "build"};
    return;
  }
  let served;
  try {
    served = await getJSON(apiURL("v1/log/policy"));
    if (!served || typeof served.origin !== "string" || !Array.isArray(served.log_keys)) {
      throw new ApiError(200, "bad_policy", "v1/log/policy is not a trust policy", apiURL("v1/log/policy"));
    }
  } catch (e) {
    state.policy = null;
    state.trust = null;
    state.trustError = e;
    return;
  }
  const pin = readPin(served.origin);
  if (!pin) {
    const firstSeen = new Date().toISOString();
    const pinned = writePin(served.origin, {policy: served, first_seen: firstSeen});
    state.policy = served;
    state.trust = {source: "tofu", firstSeen, pinned, origin: served.origin};
  } else if (!sameKeys(pin.policy.log_keys, served.log_keys)) {
    state.policy = pin.policy;
    state.trust = {source: "tofu", firstSeen: pin.first_seen, pinned: true, origin: served.origin};
    state.keyChange = {pinned: pin.policy.log_keys, served: served.log_keys, firstSeen: pin.first_seen};
  } else {
    writePin(served.origin, {policy: served, first_seen: pin.first_seen});
    state.policy = served;
    state.trust = {source: "tofu", firstSeen: pin.first_seen, pinned: true, origin: served.origin};
  }
}

async function loadLogInfo() {
  try {
    state.logInfo = await getJSON(apiURL("v1/log"));
    state.logInfoError = null;
  } catch (e) {
    state.logInfo = null;
    state.logInfoError = e;
  }
}

function origin() {
  return state.policy?.origin ?? state.logInfo?.origin ?? "";
}

function renderBanners() {
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

// ---------------------------------------------------------------- router

function parseHash() {
  let h = location.hash || "#/";
  if (!h.startsWith("#/")) h = "#/";
  const [pathPart, query = ""] = h.slice(2).split("?", 2);
  const parts = pathPart.split("/").filter(Boolean).map((p) => {
    try { return decodeURIComponent(p); } catch { return p; }
  });
  return {route: parts[0] ?? "", rest: parts.slice(1), params: new URLSearchParams(query)};
}

function go(hash) {
  document.body.dataset.ready = "";
  if (location.hash === hash) route();
  else location.hash = hash;
}

const ROUTES = {
  "": {render: renderLanding, nav: "overview", title: "Overview"},
  search: {render: renderSearch, nav: "search", title: "Search"},
  entry: {render: renderEntry, nav: "search", title: "Entry"},
  consistency: {render: renderConsistency, nav: "consistency", title: "Consistency"},
  timeline: {render: renderTimeline, nav: "search", title: "Timeline"},
};

async function route() {
  const token = ++state.routeToken;
  document.body.dataset.ready = "";
  for (const f of state.cleanups.splice(0)) {
    try { f(); } catch { /* best effort */ }
  }
  const {route: name, rest, params} = parseHash();
  const r = ROUTES[name];
  const main = $("#main");
  const view = el("div", {class: "view"});
  main.replaceChildren(view);
  for (const a of document.querySelectorAll(".site-nav a")) {
    if (r && a.dataset.nav === r.nav) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const ctx = {alive: () => token === state.routeToken, view};
  document.title = `${r ? r.title : "Not found"} · ${origin() || "Log explorer"}`;
  try {
    if (!r) {
      view.append(el("h1", {tabindex: "-1"}, "Page not found"),
        errorBox({code: "not_found", message: `no page ${location.hash}`}),
        el("p", null, link("#/", "Back to the overview")));
    } else {
      await r.render(view, {rest, params}, ctx);
    }
  } catch (e) {
    if (ctx.alive()) view.append(errorBox(e, "This page could not be shown"));
  }
  if (!ctx.alive()) return;
  if (!state.firstRoute) {
    const h1 = $("h1", view);
    if (h1) {
      h1.setAttribute("tabindex", "-1");
      h1.focus({preventScroll: false});
    }
  }
  state.firstRoute = false;
  document.body.dataset.ready = "1";
}

// ---------------------------------------------------------------- search form

function searchForm({field = "subject", q = "", withIndex = true, target = "search", compact = false} = {}) {
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

function normalizeTerm(field, term) {
  if (field === "subject" || field === "signer") {
    if (/^[0-9a-fA-F]{64}$/.test(term)) return `sha256:${term.toLowerCase()}`;
    const m = /^([A-Za-z0-9_-]+):([0-9a-fA-F]+)$/.exec(term);
    if (m) return `${m[1].toLowerCase()}:${m[2].toLowerCase()}`;
  }
  return term;
}

// ---------------------------------------------------------------- landing

async function renderLanding(view, _args, ctx) {
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

// ---------------------------------------------------------------- hits (search, timeline)

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

function loggedEl(unix) {
  const iso = new Date(unix * 1000).toISOString();
  return el("time", {datetime: iso, title: fmtUTC(unix, {seconds: false})},
    el("span", {class: "date"}, iso.slice(0, 10)), " ", el("span", {class: "clock"}, `${iso.slice(11, 16)} UTC`));
}

function kindLabel(kind) {
  return KIND_LABEL[kind] ?? "Unparsed";
}

const KIND_SHORT = {dsse: "DSSE", hashedrekord: "Digest", rekor: "Rekor v2", raw: "Raw"};
function kindTag(kind) {
  return el("span", {class: `tag kind-${KIND_SHORT[kind] ? kind : "unparsed"}`, title: kindLabel(kind)}, KIND_SHORT[kind] ?? "Unparsed");
}

function subjectsCell(info, max = 2) {
  const subs = subjectStrings(info);
  if (!subs.length) return el("span", {class: "muted"}, "—");
  return el("ul", {class: "plain compact-list"},
    subs.slice(0, max).map((s) => el("li", null, hashEl(s, "subject digest"))),
    subs.length > max ? el("li", {class: "muted small"}, `+${subs.length - max} more`) : null);
}

function signersCell(info, max = 2) {
  const sig = (info.signers || []).filter((s) => typeof s === "string");
  if (!sig.length) return el("span", {class: "muted"}, "—");
  return el("ul", {class: "plain compact-list"},
    sig.slice(0, max).map((s) => el("li", null, hashEl(s, "signer"))),
    sig.length > max ? el("li", {class: "muted small"}, `+${sig.length - max} more`) : null);
}

function predicateText(info) {
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

function termParams(params, {withIndex}) {
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
async function loadHits(box, {field, q, cursor, limit, waiting}, ctx) {
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
async function pageAndProve(box, route, label, {field, q, cursor}, {doc, cp, hits, status}, ctx) {
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

async function renderSearch(view, {params}, ctx) {
  const {field, q: rawQ, cursor, badCursor} = termParams(params, {withIndex: true});
  view.append(el("h1", null, "Search"));
  view.append(searchForm({field, q: rawQ}));
  const results = el("div", {id: "results", class: "results"});
  view.append(results);
  if (!rawQ) {
    results.append(el("div", {class: "empty"},
      el("p", null, "Find entries by what they attest to, who signed them, or what kind of attestation they are."),
      el("ul", null,
        el("li", null, el("strong", null, "Subject digest: "), "the digest of an artifact, such as ", el("code", null, "sha256:1368449e…"), "."),
        el("li", null, el("strong", null, "Signer: "), "SHA-256 of the signer's DER public key, ", el("code", null, "sha256:<hex>"), "."),
        el("li", null, el("strong", null, "Predicate type: "), "a URI such as ", el("code", null, "https://slsa.dev/provenance/v1"), "."))));
    return;
  }
  if (field === "index") {
    if (isCanonicalDecimal(rawQ)) {
      history.replaceState(null, "", `#/entry/${rawQ}`);
      route();
      return;
    }
    results.append(errorBox({code: "bad_parameter", message: "an entry index is a whole number"}));
    return;
  }
  const q = normalizeTerm(field, rawQ);
  if (badCursor) {
    results.append(errorBox({code: "bad_parameter", message: "the cursor is not a whole number"}));
    return;
  }
  const page = await loadHits(results, {field, q, cursor, limit: PAGE_SIZE, waiting: "Searching…"}, ctx);
  if (!page) return;
  const {hits, status} = page;

  const termLinks = el("p", {class: "term-links small"},
    link(`#/timeline?${new URLSearchParams({field, q})}`, "Timeline for this term", {id: "timeline-link"}), " · ",
    el("a", {href: apiURL(`v1/feed?${new URLSearchParams({[field]: q})}`), type: "application/atom+xml", id: "feed-link"}, "Atom feed"));
  results.append(termLinks);

  if (!hits.length) {
    status.textContent = cursor !== null ? "No older entries." : `No entries found for ${FIELD_LABEL[field].toLowerCase()} ${q}.`;
  } else {
    const table = el("table", {class: "hits"},
      el("caption", {class: "visually-hidden"}, `Entries matching ${q}, newest first`),
      el("thead", null, el("tr", null,
        ["Entry", "Predicate type", "Subjects", "Signers", "Logged", "Proof"].map((t) => el("th", {scope: "col"}, t)))));
    const tbody = el("tbody");
    for (const h of hits) {
      const cell = (label, cls, ...kids) => el("td", {"data-label": label, class: cls}, el("div", {class: "cell"}, ...kids));
      tbody.append(el("tr", {class: "hit", "data-index": h.index},
        cell("Entry", "idx", link(`#/entry/${h.index}`, String(h.index), {"aria-label": `Entry ${h.index}`}), " ", kindTag(h.info.kind)),
        cell("Predicate", "predicate-type", predicateText(h.info)),
        cell("Subjects", "subjects", subjectsCell(h.info)),
        cell("Signers", "signers", signersCell(h.info)),
        cell("Logged", "logged", h.minute !== null ? loggedEl(h.minute) : el("span", {class: "muted"}, "unknown")),
        cell("Proof", "proof", h.badge)));
    }
    table.append(tbody);
    results.append(el("div", {class: "table-wrap"}, table));
    status.textContent = `Proving ${hits.length} ${hits.length === 1 ? "entry" : "entries"}…`;
  }

  await pageAndProve(results, "search", "Result pages", {field, q, cursor}, page, ctx);
}

function summaryText(n, counts, older) {
  const parts = [`${n} ${n === 1 ? "entry" : "entries"}${older ? " (older page)" : ", newest first"}`];
  if (counts.verified) parts.push(`${counts.verified} proven in your browser`);
  if (counts.failed) parts.push(`${counts.failed} failed verification`);
  if (counts.other) parts.push(`${counts.other} not verified`);
  return `${parts.join("; ")}.`;
}

// ---------------------------------------------------------------- timeline

async function renderTimeline(view, {params}, ctx) {
  const {field, q: rawQ, cursor, badCursor} = termParams(params, {withIndex: false});
  view.append(el("h1", null, "Timeline"));
  view.append(searchForm({field, q: rawQ, withIndex: false, target: "timeline"}));
  const box = el("div", {id: "timeline", class: "timeline"});
  view.append(box);
  if (!rawQ) {
    box.append(note("The entries for a subject, signer or predicate type over time, newest first, each proven in your browser."));
    return;
  }
  if (badCursor) {
    box.append(errorBox({code: "bad_parameter", message: "the cursor is not a whole number"}));
    return;
  }
  const q = normalizeTerm(field, rawQ);
  const feedURL = apiURL(`v1/feed?${new URLSearchParams({[field]: q})}`);
  const alt = el("link", {rel: "alternate", type: "application/atom+xml", href: feedURL, title: `Entries for ${q}`, id: "feed-alternate"});
  document.head.append(alt);
  state.cleanups.push(() => alt.remove());

  box.append(el("p", {class: "term-links"},
    el("span", null, FIELD_LABEL[field], " ", el("code", {class: "term"}, q)), " · ",
    el("a", {href: feedURL, type: "application/atom+xml", id: "feed-link", class: "feed"}, "Atom feed"), " · ",
    link(`#/search?${new URLSearchParams({field, q})}`, "Search results")));
  const page = await loadHits(box, {field, q, cursor, limit: TIMELINE_PAGE_SIZE, waiting: "Loading…"}, ctx);
  if (!page) return;
  const {hits, status} = page;
  if (!hits.length) {
    status.textContent = cursor !== null ? "No older entries." : "No entries found.";
  } else {
    status.textContent = `Proving ${hits.length} entries…`;
    const groups = new Map();
    for (const h of hits) {
      const key = h.minute !== null ? fmtDay(h.minute) : "unknown";
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(h);
    }
    for (const [day, hs] of groups) {
      const hid = `day-${day}`;
      const list = el("ol", {class: "day-list plain"});
      for (const h of hs) {
        list.append(el("li", {class: "hit", "data-index": h.index},
          el("div", {class: "tl-time"}, h.minute !== null
            ? el("time", {datetime: new Date(h.minute * 1000).toISOString()}, new Date(h.minute * 1000).toISOString().slice(11, 16), " UTC")
            : el("span", {class: "muted"}, "—")),
          el("div", {class: "tl-body"},
            el("div", {class: "tl-head"}, link(`#/entry/${h.index}`, `Entry ${h.index}`), " ",
              kindTag(h.info.kind), " ", h.badge),
            h.info.predicateType ? el("div", {class: "tl-meta"}, predicateText(h.info)) : null,
            el("div", {class: "tl-meta"},
              el("span", {class: "tl-field"}, el("span", {class: "tl-label"}, "Subject"), subjectsCell(h.info, 1)),
              el("span", {class: "tl-field"}, el("span", {class: "tl-label"}, "Signer"), signersCell(h.info, 1))))));
      }
      box.append(el("section", {class: "day", "aria-labelledby": hid},
        el("h2", {id: hid}, day === "unknown" ? "Time not recorded" : el("time", {datetime: day}, day)), list));
    }
  }
  await pageAndProve(box, "timeline", "Timeline pages", {field, q, cursor}, page, ctx);
}

// ---------------------------------------------------------------- entry

function blobLink(bytes, type, filename, kind, text) {
  const url = URL.createObjectURL(new Blob([bytes], {type}));
  state.cleanups.push(() => URL.revokeObjectURL(url));
  return el("a", {href: url, download: filename, "data-kind": kind, class: "download"}, text);
}

function hexdump(bytes, limit = HEXDUMP_LIMIT) {
  const lines = [];
  const n = Math.min(bytes.length, limit);
  for (let off = 0; off < n; off += 16) {
    const chunk = bytes.subarray(off, Math.min(off + 16, n));
    const hex = Array.from(chunk, (b) => b.toString(16).padStart(2, "0")).join(" ");
    const ascii = Array.from(chunk, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ".")).join("");
    lines.push(`${off.toString(16).padStart(8, "0")}  ${hex.padEnd(47)}  ${ascii}`);
  }
  if (bytes.length > limit) lines.push(`… ${bytes.length - limit} more bytes (download the leaf for all of it)`);
  return el("pre", {class: "hexdump", tabindex: "0", "aria-label": "Hex dump of the entry"}, lines.join("\n"));
}

/** The predicate (attacker-controlled JSON), as nested definition lists; text only. */
function renderJSONValue(v, depth, budget) {
  if (budget.left-- <= 0) {
    budget.truncated = true;
    return el("span", {class: "muted"}, "…");
  }
  if (v === null) return el("span", {class: "j-null"}, "null");
  if (typeof v === "boolean") return el("span", {class: "j-lit"}, String(v));
  if (typeof v === "number") return el("span", {class: "j-num"}, String(v));
  if (typeof v === "string") {
    const url = safeHttpUrl(v);
    if (url) return externalLink(url, v);
    return el("span", {class: v.length > 80 ? "j-str j-long" : "j-str"}, v);
  }
  if (depth >= PREDICATE_MAX_DEPTH) {
    return el("code", {class: "j-deep"}, JSON.stringify(v));
  }
  if (Array.isArray(v)) {
    if (!v.length) return el("span", {class: "j-empty"}, "[ ] (empty list)");
    const ol = el("ol", {class: "j-array", start: "0"});
    for (const item of v) {
      if (budget.left <= 0) { budget.truncated = true; break; }
      ol.append(el("li", null, renderJSONValue(item, depth + 1, budget)));
    }
    return ol;
  }
  if (typeof v === "object") {
    const keys = Object.keys(v);
    if (!keys.length) return el("span", {class: "j-empty"}, "{ } (empty)");
    const d = el("dl", {class: "j-object"});
    for (const k of keys) {
      if (budget.left <= 0) { budget.truncated = true; break; }
      d.append(el("dt", null, k), el("dd", null, renderJSONValue(v[k], depth + 1, budget)));
    }
    return d;
  }
  return el("span", null, String(v));
}

function renderStatement(statement, payloadType) {
  const sec = el("section", {id: "statement", class: "card", "aria-labelledby": "statement-h"},
    el("h2", {id: "statement-h"}, "In-toto Statement"));
  if (!statement || typeof statement !== "object") {
    sec.append(note("No in-toto Statement: the envelope's payload is not one."));
    return sec;
  }
  const type = typeof statement._type === "string" ? statement._type : "(missing)";
  const ptype = typeof statement.predicateType === "string" ? statement.predicateType : null;
  const subjects = Array.isArray(statement.subject) ? statement.subject : [];
  const subjTable = el("table", {class: "subjects"},
    el("caption", {class: "visually-hidden"}, "Subjects"),
    el("thead", null, el("tr", null, el("th", {scope: "col"}, "Name"), el("th", {scope: "col"}, "Digests"))));
  const tb = el("tbody");
  for (const s of subjects.slice(0, 500)) {
    if (!s || typeof s !== "object") continue;
    const digests = s.digest && typeof s.digest === "object" ? Object.entries(s.digest) : [];
    tb.append(el("tr", {class: "subject"},
      el("td", {"data-label": "Name", class: "subject-name"}, typeof s.name === "string" && s.name ? s.name : el("span", {class: "muted"}, "(no name)")),
      el("td", {"data-label": "Digests"}, el("ul", {class: "plain compact-list"}, digests.map(([alg, hex]) => {
        const term = `${alg}:${String(hex)}`;
        return el("li", null, hashEl(term, "subject digest"), " ",
          link(`#/search?${new URLSearchParams({field: "subject", q: term})}`, "entries", {class: "small", "aria-label": `Entries with subject ${term}`}));
      })))));
  }
  subjTable.append(tb);
  sec.append(dl([
    ["_type", el("code", {class: "wrap-any"}, type)],
    ["Predicate type", ptype ? [el("code", {class: "wrap-any"}, ptype), " ",
      link(`#/search?${new URLSearchParams({field: "predicate_type", q: ptype})}`, "entries of this type", {class: "small"})] : el("span", {class: "muted"}, "(none)")],
    payloadType ? ["Payload type", el("code", {class: "wrap-any"}, payloadType)] : null,
    ["Subjects", `${subjects.length}${subjects.length > 500 ? " (first 500 shown)" : ""}`],
  ]), el("div", {class: "table-wrap"}, subjTable));
  return sec;
}

function renderPredicate(statement) {
  const sec = el("section", {class: "card", "aria-labelledby": "predicate-h", id: "predicate-section"},
    el("h2", {id: "predicate-h"}, "Predicate"));
  const box = el("div", {id: "predicate", class: "predicate"});
  const pred = statement && typeof statement === "object" ? statement.predicate : undefined;
  const budget = {left: PREDICATE_NODE_BUDGET, truncated: false};
  if (pred === undefined) box.append(note("The Statement has no predicate."));
  else box.append(renderJSONValue(pred, 0, budget));
  if (budget.truncated) box.append(note("The predicate is too large to show in full; the raw JSON below has all of it.", "caveat"));
  let raw;
  try { raw = JSON.stringify(pred ?? null, null, 2); } catch { raw = String(pred); }
  sec.append(box, el("details", {class: "raw"},
    el("summary", null, "Raw predicate JSON"),
    el("pre", {id: "predicate-raw", tabindex: "0"}, raw)));
  let rawStatement;
  try { rawStatement = JSON.stringify(statement, null, 2); } catch { rawStatement = ""; }
  sec.append(el("details", {class: "raw"},
    el("summary", null, "Raw Statement JSON"),
    el("pre", {id: "statement-raw", tabindex: "0"}, rawStatement)));
  return sec;
}

function checkItem(list, name, label) {
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

function receiptError(message, code = "receipt_mismatch", evidence) {
  return Object.assign(new Error(message), {code, evidence});
}

async function checkReceipt(receipt, index, leafBytes) {
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

async function renderEntry(view, {rest}, ctx) {
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

// ---------------------------------------------------------------- consistency

async function renderConsistency(view, {params}, ctx) {
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

// ---------------------------------------------------------------- boot

async function boot() {
  document.body.dataset.ready = "";
  const skip = $("#skip-link");
  skip.addEventListener("click", (ev) => {
    ev.preventDefault();
    const main = $("#main");
    main.focus();
    main.scrollIntoView();
  });
  await loadConfig();
  await Promise.all([loadTrust(), loadLogInfo()]);
  renderBanners();
  window.addEventListener("hashchange", route);
  // A click on an in-app link starts a new route: not ready from this moment on.
  document.addEventListener("click", (ev) => {
    const a = ev.target instanceof Element ? ev.target.closest("a[href^='#/']") : null;
    if (a && !ev.defaultPrevented && ev.button === 0 && !ev.metaKey && !ev.ctrlKey && !ev.shiftKey && !ev.altKey) {
      document.body.dataset.ready = "";
      if (a.getAttribute("href") === location.hash) {
        ev.preventDefault(); // no hashchange would follow: render again here
        route();
      }
    }
  }, true);
  await route();
}

boot().catch((e) => {
  const main = $("#main");
  main.replaceChildren(errorBox(e, "The explorer could not start"));
  document.body.dataset.ready = "1";
});
