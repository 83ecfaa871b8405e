// verify.js: check a transparency log's answers in the browser, with WebCrypto only.
//
// A pure, dependency-free ES module (no imports, no build step). It runs unchanged in a
// secure-context browser page (Chromium 137+: Ed25519 in WebCrypto) and under Node 20, where
// tests/js/explorer_verify_test.mjs checks it against vectors made by the Python code of this
// repository (tests/test_explorer_verify.py). It mirrors, byte for byte and refusal for
// refusal, client/note.py, client/checkpoint.py, client/merkle.py, client/tiles.py,
// client/rekorleaf.py and client/attest.py; the formats are C2SP signed-note, tlog-checkpoint,
// tlog-cosignature (cosignature/v1) and tlog-tiles (docs/leaf-format.md for the leaves).
//
// Choices the callers must know:
// - `parseVkey` and `parseLeaf` are async: key IDs and signer identities are SHA-256 digests,
//   and WebCrypto only digests asynchronously. Everything that hashes returns a Promise.
// - Tree sizes, indexes and levels are JS Numbers; anything above 2^53-1 is refused (a
//   checkpoint whose size is above that is 'malformed_checkpoint', although Python accepts
//   sizes up to 2^64-1).
// - Unlike client/verify.py, which refuses a whole note when any trusted key's signature
//   fails, a failing cosignature by a policy witness does not throw: it is reported with
//   verified=false and does not count toward the quorum. A failing *log* signature throws.
// - Quorum and freshness are reported (`quorumMet`, `fresh`), never thrown, so a page can show
//   what it got. Cosignatures dated more than 300 s after `now` do not count (as in Python).
// - Hashes read from tiles are trusted only once folded into a proof that verifies against a
//   signed root (`verifyEntry` does that); `TileReader` alone only computes.
// - Ed25519 goes through WebCrypto, which may be laxer than libsodium (used by the Python
//   code) about small-order keys; both refuse non-canonical signatures.
//
// Every refusal is a VerificationError with a stable `code`:
//   bad_base64, bad_vkey, bad_policy, bad_argument, malformed_note, malformed_checkpoint,
//   origin_mismatch, log_signature_missing, log_signature_invalid, bad_proof,
//   old_root_required, inclusion_mismatch, consistency_mismatch, index_not_covered,
//   tree_size_mismatch, bad_tile, malformed_envelope, envelope_mismatch, no_webcrypto.
// `evidence` holds the offending values (hashes in standard base64 unless named *_hex).

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const HASH_SIZE = 32;
const TILE_HEIGHT = 8;
const TILE_WIDTH = 256;
const MAX_NOTE_SIZE = 1 << 20; // client/note.py MAX_NOTE_SIZE
const MAX_CHECKPOINT_NOTE = 64 * 1024; // client/verify.py MAX_CHECKPOINT_NOTE
const MAX_CHECKPOINT_TEXT = 16 * 1024; // client/checkpoint.py MAX_CHECKPOINT_TEXT
const MAX_SIGNATURES = 100;
const MAX_NAME_SIZE = 255;
const CLOCK_SKEW_SECONDS = 300;
const ALG_ED25519 = 0x01;
const ALG_ECDSA = 0x02;
const ALG_COSIGNATURE_V1 = 0x04;
const EM_DASH_PREFIX = '\u2014 ';

// C0 controls except the newline (client/note.py _CONTROL; DEL is allowed there too).
const CONTROL = /[\x00-\x09\x0b-\x1f]/;
const DECIMAL = /^(?:0|[1-9][0-9]{0,19})$/;
const STD_B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
// Python's `c.isspace() or not c.isprintable()`: every such character is in General Category
// Other (C*) or Separator (Z*), and every C*/Z* character is one of them.
const BAD_NAME_CHAR = /[\p{C}\p{Z}]/u;

const encoder = new TextEncoder();
// fatal: invalid UTF-8 is refused as Python's decode("utf-8") does; ignoreBOM: a BOM stays a
// character (Python keeps it too), so it is refused where a name or origin cannot hold it.
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

const B64_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_VALUES = new Map([...B64_ALPHABET].map((c, i) => [c, i]));

// --- errors ---------------------------------------------------------------------------------

/** A refusal. `code` is stable (see the header); `evidence` holds the values that failed. */
export class VerificationError extends Error {
  constructor(code, message, evidence = {}) {
    super(message);
    this.name = 'VerificationError';
    this.code = code;
    this.evidence = evidence;
  }
}

function fail(code, message, evidence = {}) {
  throw new VerificationError(code, message, evidence);
}

/** True iff WebCrypto is there: browsers expose it only in secure contexts (https, localhost). */
export function canVerify() {
  return Boolean(globalThis.crypto?.subtle);
}

function subtle() {
  const s = globalThis.crypto?.subtle;
  if (!s) fail('no_webcrypto', 'WebCrypto is not available (the page is not a secure context)');
  return s;
}

// --- bytes ----------------------------------------------------------------------------------

function asBytes(x, what) {
  if (x instanceof Uint8Array) return x;
  if (x instanceof ArrayBuffer) return new Uint8Array(x);
  if (ArrayBuffer.isView(x)) return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  if (typeof x === 'string') return encoder.encode(x);
  return fail('bad_argument', `${what} must be bytes`);
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

function equal(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Strings from the network may hold lone surrogates, which no UTF-8 text can. */
function wellFormed(s) {
  if (typeof s.isWellFormed === 'function') return s.isWellFormed();
  return !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);
}

/** Length in code points, as Python's len(str) counts (only computed when it can matter). */
function codePoints(s, limit) {
  return s.length <= limit ? s.length : [...s].length;
}

function utf8(s) {
  return encoder.encode(s);
}

/** Lowercase hex. */
export function hex(bytes) {
  let out = '';
  for (const b of asBytes(bytes, 'hex input')) out += b.toString(16).padStart(2, '0');
  return out;
}

function fromHex(s) {
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Standard base64 (RFC 4648 §4) with padding. */
export function b64encode(bytes) {
  const b = asBytes(bytes, 'base64 input');
  let out = '';
  for (let i = 0; i < b.length; i += 3) {
    const n = (b[i] << 16) | ((b[i + 1] ?? 0) << 8) | (b[i + 2] ?? 0);
    out += B64_ALPHABET[(n >> 18) & 63] + B64_ALPHABET[(n >> 12) & 63];
    out += i + 1 < b.length ? B64_ALPHABET[(n >> 6) & 63] : '=';
    out += i + 2 < b.length ? B64_ALPHABET[n & 63] : '=';
  }
  return out;
}

/**
 * Strict standard base64, as client/encoding.b64decode_std: alphabet only, padding required,
 * and canonical (the unused low bits of the last character are zero), so exactly one text
 * encodes each byte string and a signed text cannot be re-encoded. `length` optionally pins
 * the decoded size. Throws VerificationError('bad_base64').
 */
export function b64decode(s, length = undefined) {
  if (typeof s !== 'string' || !STD_B64.test(s)) {
    fail('bad_base64', 'not standard padded base64', { value: String(s).slice(0, 120) });
  }
  const body = s.replace(/=+$/, '');
  const out = new Uint8Array(Math.floor((body.length * 3) / 4));
  let acc = 0;
  let bits = 0;
  let pos = 0;
  for (const c of body) {
    acc = ((acc << 6) | B64_VALUES.get(c)) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[pos++] = (acc >> bits) & 0xff;
    }
  }
  if (bits && acc & ((1 << bits) - 1)) {
    fail('bad_base64', 'not canonical base64 (unused bits set)', { value: s.slice(0, 120) });
  }
  if (length !== undefined && out.length !== length) {
    fail('bad_base64', `must decode to ${length} bytes, got ${out.length}`, { value: s.slice(0, 120) });
  }
  return out;
}

/** Standard or URL-safe base64, padded or not, each strictly (DSSE accepts all four). */
function b64decodeAny(s) {
  if (typeof s !== 'string') fail('bad_base64', 'base64 value must be a string');
  let t = s;
  if (/[-_]/.test(t)) {
    if (/[+/]/.test(t)) fail('bad_base64', 'mixes base64 alphabets', { value: s.slice(0, 120) });
    t = t.replace(/-/g, '+').replace(/_/g, '/');
  }
  if (t.length % 4 === 1) fail('bad_base64', 'not base64', { value: s.slice(0, 120) });
  if (t.length % 4) t += '='.repeat(4 - (t.length % 4));
  return b64decode(t);
}

// --- hashing --------------------------------------------------------------------------------

/** SHA-256 of bytes (a string is taken as its UTF-8). */
export async function sha256(bytes) {
  return new Uint8Array(await subtle().digest('SHA-256', asBytes(bytes, 'data')));
}

async function digest(alg, bytes) {
  return new Uint8Array(await subtle().digest(alg, bytes));
}

/** RFC 6962 leaf hash: SHA-256(0x00 || entry). */
export async function leafHash(entry) {
  return sha256(concat(Uint8Array.of(0), asBytes(entry, 'entry')));
}

/** RFC 6962 interior node: SHA-256(0x01 || left || right). */
async function nodeHashOf(left, right) {
  return sha256(concat(Uint8Array.of(1), left, right));
}

const EMPTY_ROOT = fromHex('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');

// --- DER, just enough for SPKI, ECDSA signatures and certificates ---------------------------

const OID = {
  ecPublicKey: '2a8648ce3d0201',
  p256: '2a8648ce3d030107',
  p384: '2b81040022',
  p521: '2b81040023',
  ed25519: '2b6570',
  rsa: '2a864886f70d010101',
};
const CURVES = {
  [OID.p256]: { name: 'P-256', size: 32, hash: 'SHA-256' },
  [OID.p384]: { name: 'P-384', size: 48, hash: 'SHA-384' },
  [OID.p521]: { name: 'P-521', size: 66, hash: 'SHA-512' },
};

/** One DER TLV at `pos` (minimal lengths only), or null. */
function derRead(b, pos, end = b.length) {
  if (pos + 2 > end) return null;
  const tag = b[pos];
  let len = b[pos + 1];
  let start = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 3 || start + n > end || b[start] === 0) return null;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[start + i];
    if (len < 0x80 || (n > 1 && len < 1 << (8 * (n - 1)))) return null; // not minimal
    start += n;
  }
  if (start + len > end) return null;
  return { tag, start, end: start + len, bytes: b.subarray(pos, start + len) };
}

/** The sequence of TLVs filling [start, end), or null. */
function derChildren(b, start, end) {
  const out = [];
  for (let pos = start; pos < end;) {
    const t = derRead(b, pos, end);
    if (!t) return null;
    out.push(t);
    pos = t.end;
  }
  return out;
}

/** A DER SubjectPublicKeyInfo: {alg, param (OID hex or null), key (BIT STRING contents)}. */
function parseSpki(spki) {
  const top = derRead(spki, 0);
  if (!top || top.tag !== 0x30 || top.end !== spki.length) return null;
  const kids = derChildren(spki, top.start, top.end);
  if (!kids || kids.length !== 2 || kids[0].tag !== 0x30 || kids[1].tag !== 0x03) return null;
  const algo = derChildren(spki, kids[0].start, kids[0].end);
  if (!algo || algo.length < 1 || algo.length > 2 || algo[0].tag !== 0x06) return null;
  const param = algo[1]?.tag === 0x06 ? hex(spki.subarray(algo[1].start, algo[1].end)) : null;
  if (spki[kids[1].start] !== 0) return null; // unused bits of the key's BIT STRING
  return {
    alg: hex(spki.subarray(algo[0].start, algo[0].end)),
    param,
    key: spki.subarray(kids[1].start + 1, kids[1].end),
  };
}

/** Strict DER ECDSA-Sig-Value -> raw r||s of `size`-byte halves (WebCrypto's form), or null. */
function ecdsaDerToRaw(sig, size) {
  const top = derRead(sig, 0);
  if (!top || top.tag !== 0x30 || top.end !== sig.length) return null;
  const ints = derChildren(sig, top.start, top.end);
  if (!ints || ints.length !== 2) return null;
  const out = new Uint8Array(2 * size);
  for (const [i, t] of ints.entries()) {
    let v = sig.subarray(t.start, t.end);
    if (t.tag !== 0x02 || v.length === 0 || v[0] & 0x80) return null; // not a positive INTEGER
    if (v.length > 1 && v[0] === 0 && !(v[1] & 0x80)) return null; // superfluous leading zero
    if (v[0] === 0) v = v.subarray(1);
    if (v.length > size) return null;
    out.set(v, (i + 1) * size - v.length);
  }
  return out;
}

/** The DER SubjectPublicKeyInfo inside a DER X.509 certificate, or null. */
function certificateSpki(cert) {
  const top = derRead(cert, 0);
  if (!top || top.tag !== 0x30 || top.end !== cert.length) return null;
  const parts = derChildren(cert, top.start, top.end);
  if (!parts || parts.length !== 3 || parts[0].tag !== 0x30) return null;
  const tbs = derChildren(cert, parts[0].start, parts[0].end);
  if (!tbs) return null;
  const fields = tbs[0]?.tag === 0xa0 ? tbs.slice(1) : tbs; // optional [0] version
  // serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo
  if (fields.length < 6 || fields[0].tag !== 0x02 || fields[5].tag !== 0x30) return null;
  const spki = fields[5].bytes.slice();
  return parseSpki(spki) ? spki : null;
}

// --- keys -----------------------------------------------------------------------------------

function checkKeyName(name, code) {
  if (typeof name !== 'string' || !name || name.includes('+') || BAD_NAME_CHAR.test(name)) {
    fail(code, 'invalid key name', { name });
  }
  if (utf8(name).length > MAX_NAME_SIZE) fail(code, 'key name is too long', { name });
}

/** Standard signed-note key ID: SHA-256(name || \n || type || public key)[0:4]. */
async function keyId(name, type, key) {
  return (await sha256(concat(utf8(name + '\n'), Uint8Array.of(type), key))).slice(0, 4);
}

/**
 * Parse a verifier key `name+hex8+base64(type || key)` (async: the key ID is a digest).
 * Types: 0x01 Ed25519, 0x04 cosignature/v1 (32-byte keys; ID over name, type and key) and
 * 0x02 ECDSA (DER SPKI on P-256/P-384/P-521; ID = SHA-256(SPKI)[0:4], the spec's quirk).
 * The hex ID must equal the recomputed one. Throws VerificationError('bad_vkey').
 * -> {name, keyId: Uint8Array(4), type, key: Uint8Array, vkey}
 */
export async function parseVkey(vkey) {
  if (typeof vkey !== 'string' || codePoints(vkey, 4096) > 4096) {
    fail('bad_vkey', 'verifier key must be a string of at most 4096 characters');
  }
  const i = vkey.indexOf('+');
  const j = i < 0 ? -1 : vkey.indexOf('+', i + 1); // base64 may contain '+': split twice only
  if (j < 0) fail('bad_vkey', 'verifier key must be name+id+key', { vkey });
  const name = vkey.slice(0, i);
  const hexId = vkey.slice(i + 1, j);
  checkKeyName(name, 'bad_vkey');
  if (!/^[0-9a-f]{8}$/.test(hexId)) fail('bad_vkey', 'key ID must be 8 lowercase hex digits', { vkey });
  let raw;
  try {
    raw = b64decode(vkey.slice(j + 1));
  } catch {
    fail('bad_vkey', 'verifier key is not standard base64', { vkey });
  }
  if (!raw.length) fail('bad_vkey', 'verifier key is empty', { vkey });
  const type = raw[0];
  const key = raw.slice(1);
  let id;
  if (type === ALG_ED25519 || type === ALG_COSIGNATURE_V1) {
    if (key.length !== 32) fail('bad_vkey', 'Ed25519 public key must be 32 bytes', { vkey });
    id = await keyId(name, type, key);
  } else if (type === ALG_ECDSA) {
    const spki = parseSpki(key);
    const curve = spki && spki.alg === OID.ecPublicKey && CURVES[spki.param];
    if (!curve) fail('bad_vkey', 'type 0x02 key must be a DER SPKI on P-256, P-384 or P-521', { vkey });
    try {
      await subtle().importKey('spki', key, { name: 'ECDSA', namedCurve: curve.name }, false, ['verify']);
    } catch {
      fail('bad_vkey', 'ECDSA key does not load', { vkey });
    }
    id = (await sha256(key)).slice(0, 4);
  } else {
    fail('bad_vkey', `unknown verifier key type 0x${type.toString(16).padStart(2, '0')}`, { vkey });
  }
  if (hex(id) !== hexId) {
    fail('bad_vkey', 'verifier key ID does not match the key', { vkey, computed_hex: hex(id) });
  }
  return { name, keyId: id, type, key, vkey };
}

async function verifyEd25519(pub, sig, msg) {
  if (sig.length !== 64) return false;
  try {
    const k = await subtle().importKey('raw', pub, { name: 'Ed25519' }, false, ['verify']);
    return await subtle().verify({ name: 'Ed25519' }, k, sig, msg);
  } catch {
    return false;
  }
}

/** A note signature line by `v` (a parsed vkey) over `text` bytes: 0x01 or 0x02. */
async function verifyNoteSignature(v, sig, text) {
  if (v.type === ALG_ED25519) return verifyEd25519(v.key, sig, text);
  // 0x02: DER ECDSA over SHA-256 of the text, whatever the curve (client/note.py ECDSAVerifier).
  const curve = CURVES[parseSpki(v.key).param];
  const raw = ecdsaDerToRaw(sig, curve.size);
  if (!raw) return false;
  try {
    const k = await subtle().importKey('spki', v.key, { name: 'ECDSA', namedCurve: curve.name }, false, ['verify']);
    return await subtle().verify({ name: 'ECDSA', hash: 'SHA-256' }, k, raw, text);
  } catch {
    return false;
  }
}

/** cosignature/v1: sig = u64be(time) || Ed25519 over "cosignature/v1\ntime <t>\n" || text. */
async function verifyCosignature(v, sig, text) {
  if (sig.length !== 72) return { ok: false, time: null };
  let t = 0n;
  for (const b of sig.subarray(0, 8)) t = (t << 8n) | BigInt(b);
  if (t >= 1n << 63n) return { ok: false, time: Number(t) };
  const msg = concat(utf8(`cosignature/v1\ntime ${t}\n`), text);
  return { ok: await verifyEd25519(v.key, sig.subarray(8), msg), time: Number(t) };
}

// --- notes and checkpoints ------------------------------------------------------------------

/**
 * Split a C2SP signed note strictly (client/note.parse_note): valid UTF-8 (a string must be
 * well-formed), no control characters but "\n", split at the last blank line, a non-empty
 * signature block ending in "\n", each line "— <name> <base64(keyid[4] || sig)>", at most
 * 100 lines, signatures of at least 5 bytes. `input` is a string or the note's bytes.
 * Throws VerificationError('malformed_note').
 * -> {text (the whole note), body (the signed text, incl. its final \n), signatures: [{name, keyId, sig}]}
 */
export function parseNote(input, { maxSize = MAX_NOTE_SIZE } = {}) {
  let s;
  if (typeof input === 'string') {
    if (!wellFormed(input)) fail('malformed_note', 'note is not valid UTF-8');
    if (input.length > maxSize || utf8(input).length > maxSize) fail('malformed_note', 'note is too large');
    s = input;
  } else {
    const b = asBytes(input, 'note');
    if (b.length > maxSize) fail('malformed_note', 'note is too large');
    try {
      s = decoder.decode(b);
    } catch {
      fail('malformed_note', 'note is not valid UTF-8');
    }
  }
  if (CONTROL.test(s)) fail('malformed_note', 'note contains control characters');
  const split = s.lastIndexOf('\n\n');
  if (split < 0) fail('malformed_note', 'note has no signature block');
  const body = s.slice(0, split + 1);
  const block = s.slice(split + 2);
  if (!block || !block.endsWith('\n')) fail('malformed_note', 'note signature block is empty or unterminated');
  const lines = block.slice(0, -1).split('\n');
  if (lines.length > MAX_SIGNATURES) fail('malformed_note', 'note has too many signatures');
  const signatures = [];
  for (const line of lines) {
    if (!line.startsWith(EM_DASH_PREFIX)) {
      fail('malformed_note', 'note signature line does not start with an em dash', { line });
    }
    const rest = line.slice(EM_DASH_PREFIX.length);
    const sp = rest.indexOf(' ');
    if (sp < 0) fail('malformed_note', 'note signature line has no signature', { line });
    const name = rest.slice(0, sp);
    checkKeyName(name, 'malformed_note');
    let raw;
    try {
      raw = b64decode(rest.slice(sp + 1));
    } catch {
      fail('malformed_note', 'note signature is not standard base64', { line });
    }
    if (raw.length < 5) fail('malformed_note', 'note signature is too short', { line });
    signatures.push({ name, keyId: raw.slice(0, 4), sig: raw.slice(4) });
  }
  return { text: s, body, signatures };
}

/**
 * Parse checkpoint text strictly (client/checkpoint.parse_checkpoint_text): origin, canonical
 * decimal size (no sign, no leading zeros; refused above 2^53-1 here), 32-byte canonical
 * standard-base64 root, non-empty extension lines, final "\n"; size 0 needs the empty root.
 * Throws VerificationError('malformed_checkpoint').
 * -> {origin, size, root: Uint8Array(32), extensions: [string]}
 */
export function parseCheckpoint(body) {
  const bad = (message, evidence) => fail('malformed_checkpoint', message, evidence);
  if (typeof body !== 'string' || !wellFormed(body)) bad('checkpoint must be text');
  if (codePoints(body, MAX_CHECKPOINT_TEXT) > MAX_CHECKPOINT_TEXT) bad('checkpoint is too large');
  if (!body.endsWith('\n')) bad('checkpoint text must end in a newline');
  const lines = body.slice(0, -1).split('\n');
  if (lines.length < 3) bad('checkpoint needs origin, size and root lines');
  if (CONTROL.test(body)) bad('checkpoint contains control characters');
  const [origin, sizeLine, rootLine, ...extensions] = lines;
  if (!DECIMAL.test(sizeLine)) bad('checkpoint size is not a canonical decimal', { size: sizeLine });
  const big = BigInt(sizeLine);
  if (big > (1n << 64n) - 1n) bad('checkpoint size is out of range', { size: sizeLine });
  if (big > BigInt(MAX_SAFE)) bad('checkpoint size is above 2^53-1, beyond what this page handles', { size: sizeLine });
  const size = Number(big);
  let root;
  try {
    root = b64decode(rootLine, HASH_SIZE);
  } catch {
    bad('checkpoint root is not 32 bytes of canonical standard base64', { root: rootLine });
  }
  if (!origin) bad('checkpoint origin must be one non-empty line');
  if (size === 0 && !equal(root, EMPTY_ROOT)) bad('an empty tree must have the empty root', { root: rootLine });
  if (extensions.some((e) => !e)) bad('checkpoint extension lines must be non-empty');
  return { origin, size, root, extensions };
}

function isObject(v) {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A policy in its JSON file form (client/policy.py), checked as TrustPolicy checks it. */
async function loadPolicy(policy) {
  const bad = (message) => fail('bad_policy', `policy: ${message}`);
  if (!isObject(policy)) bad('must be an object');
  const { origin } = policy;
  if (typeof origin !== 'string' || !origin || origin.includes('\n')) bad('origin must be one non-empty line');
  const mode = policy.log_signatures ?? 'all';
  if (mode !== 'all' && mode !== 'any') bad('log_signatures must be "all" or "any"');
  const vkeys = async (field) => {
    const list = policy[field] ?? [];
    if (!Array.isArray(list) || list.length > 64) bad(`${field} must be a list of at most 64 keys`);
    const out = [];
    for (const [i, vk] of list.entries()) {
      try {
        out.push(await parseVkey(vk));
      } catch (err) {
        bad(`${field}[${i}]: ${err.message}`);
      }
    }
    return out;
  };
  const logKeys = await vkeys('log_keys');
  const witnesses = await vkeys('witnesses');
  if (!logKeys.length) bad('log_keys must list at least one verifier key');
  for (const k of logKeys) {
    if (k.name !== origin) bad(`log key ${k.name} is not named after the origin`);
    if (k.type === ALG_COSIGNATURE_V1) bad('a cosignature/v1 key cannot be a log key');
  }
  for (const w of witnesses) if (w.type !== ALG_COSIGNATURE_V1) bad(`witness ${w.name} is not a cosignature/v1 key`);
  if (new Set(witnesses.map((w) => w.name)).size !== witnesses.length) bad('two witnesses share a name');
  const all = [...logKeys, ...witnesses];
  if (new Set(all.map((k) => hex(k.key))).size !== all.length) bad('the same public key is listed twice');
  const quorum = policy.witness_quorum ?? 0;
  if (!Number.isInteger(quorum) || quorum < 0 || quorum > witnesses.length) {
    bad(`witness_quorum must be within 0..${witnesses.length}`);
  }
  if (witnesses.length && quorum === 0) bad('witnesses are listed but witness_quorum is 0');
  const maxAge = policy.max_age_seconds ?? null;
  if (maxAge !== null && (!Number.isInteger(maxAge) || maxAge <= 0 || quorum === 0)) {
    bad('max_age_seconds must be a positive integer, and needs witnesses');
  }
  return { origin, mode, logKeys, witnesses, quorum, maxAge };
}

const sameKey = (sig, k) => sig.name === k.name && equal(sig.keyId, k.keyId);

/**
 * Verify a signed checkpoint under a policy (the JSON form of client/policy.py):
 * log signatures (Ed25519 0x01, ECDSA 0x02) per `log_signatures`, then the body, then the
 * origin, then each cosignature/v1 line by a policy witness. `now` is Unix seconds.
 * Throws 'malformed_note', 'log_signature_invalid', 'log_signature_missing',
 * 'malformed_checkpoint', 'origin_mismatch' (or 'bad_policy').
 * -> {checkpoint, logKeys: [vkey], cosignatures: [{name, vkey, time, verified, future}],
 *     quorumMet, newestCosignature, cosignedAt (the k-th newest counted time, as Python's
 *     cosigned_at), fresh (max_age_seconds met; true without one), age (seconds or null),
 *     unknownSignatures: [{name, keyId hex}], note}
 */
export async function verifyCheckpoint(noteText, policy, { now } = {}) {
  const p = await loadPolicy(policy);
  const note = parseNote(noteText, { maxSize: MAX_CHECKPOINT_NOTE });
  const text = utf8(note.body);
  const logVerified = new Set();
  const witnessVerified = new Set();
  const cosignatures = [];
  const unknown = new Map();
  for (const sig of note.signatures) {
    const logKey = p.logKeys.find((k) => sameKey(sig, k));
    if (logKey) {
      if (logVerified.has(logKey)) continue; // later lines by a verified key are skipped
      if (!(await verifyNoteSignature(logKey, sig.sig, text))) {
        fail('log_signature_invalid', `invalid signature by log key ${logKey.vkey}`, {
          vkey: logKey.vkey,
          signature: b64encode(concat(sig.keyId, sig.sig)),
        });
      }
      logVerified.add(logKey);
      continue;
    }
    const witness = p.witnesses.find((k) => sameKey(sig, k));
    if (witness) {
      if (witnessVerified.has(witness)) continue;
      const { ok, time } = await verifyCosignature(witness, sig.sig, text);
      if (ok) witnessVerified.add(witness);
      cosignatures.push({ name: witness.name, vkey: witness.vkey, time, verified: ok, future: false });
      continue;
    }
    const k = `${sig.name} ${hex(sig.keyId)}`;
    if (!unknown.has(k)) unknown.set(k, { name: sig.name, keyId: hex(sig.keyId) });
  }
  const logKeys = p.logKeys.filter((k) => logVerified.has(k)).map((k) => k.vkey);
  if (!logKeys.length) {
    fail('log_signature_missing', `checkpoint has no signature by a log key of ${p.origin}`, { origin: p.origin });
  }
  if (p.mode === 'all' && logKeys.length !== p.logKeys.length) {
    const missing = p.logKeys.filter((k) => !logVerified.has(k)).map((k) => k.vkey);
    fail('log_signature_missing', 'checkpoint lacks the signature of required log key(s)', { missing });
  }
  const checkpoint = parseCheckpoint(note.body);
  if (checkpoint.origin !== p.origin) {
    fail('origin_mismatch', `checkpoint is for origin ${checkpoint.origin}, the policy trusts ${p.origin}`, {
      expected: p.origin,
      got: checkpoint.origin,
    });
  }
  const clock = now ?? Date.now() / 1000;
  const stamps = new Map(); // witness name -> newest counted time
  for (const c of cosignatures) {
    if (!c.verified) continue;
    if (c.time > clock + CLOCK_SKEW_SECONDS) {
      c.future = true; // a fast or stuck clock must not vouch for freshness
      continue;
    }
    stamps.set(c.name, Math.max(c.time, stamps.get(c.name) ?? 0));
  }
  const times = [...stamps.values()].sort((a, b) => b - a);
  const quorumMet = times.length >= p.quorum;
  const cosignedAt = quorumMet && p.quorum ? times[p.quorum - 1] : null;
  const age = cosignedAt === null ? null : clock - cosignedAt;
  const fresh = p.maxAge === null || (quorumMet && age !== null && age <= p.maxAge);
  return {
    checkpoint,
    logKeys,
    cosignatures,
    quorumMet,
    newestCosignature: times.length ? times[0] : null,
    cosignedAt,
    fresh,
    age,
    unknownSignatures: [...unknown.values()],
    note,
  };
}

// --- tiles ----------------------------------------------------------------------------------

function checkUint(n, what, code = 'bad_argument') {
  if (!Number.isSafeInteger(n) || n < 0) fail(code, `${what} must be an integer in 0..2^53-1`, { [what]: n });
}

function formatIndex(n) {
  let s = String(n % 1000).padStart(3, '0');
  n = Math.floor(n / 1000);
  while (n > 0) {
    s = `x${String(n % 1000).padStart(3, '0')}/${s}`;
    n = Math.floor(n / 1000);
  }
  return s;
}

/**
 * C2SP tlog-tiles path: "tile/<L>/<N>[.p/<W>]", or "tile/entries/<N>[.p/<W>]" when level is
 * "entries"; N in 3-digit groups with x prefixes (1234067 -> x001/x234/067); width 256 = full.
 */
export function tilePath(level, index, width = TILE_WIDTH) {
  if (level !== 'entries' && !(Number.isInteger(level) && level >= 0 && level <= 63)) {
    fail('bad_argument', 'tile level must be 0..63 or "entries"', { level });
  }
  checkUint(index, 'index');
  if (!Number.isInteger(width) || width < 1 || width > TILE_WIDTH) fail('bad_argument', 'tile width must be 1..256', { width });
  const head = level === 'entries' ? 'tile/entries/' : `tile/${level}/`;
  return head + formatIndex(index) + (width === TILE_WIDTH ? '' : `.p/${width}`);
}

/** How many hashes tile (level, index) holds in a tree of `size` leaves (0: none). */
function tileWidthAt(level, index, size) {
  const count = Math.floor(size / TILE_WIDTH ** level);
  const full = Math.floor(count / TILE_WIDTH);
  if (index < full) return TILE_WIDTH;
  if (index === full) return count % TILE_WIDTH;
  return 0;
}

/** floor(log2(n)) for 1 <= n <= 2^53, exactly (no floating-point log). */
function floorLog2(n) {
  let l = 0;
  while (2 ** (l + 1) <= n) l++;
  return l;
}

/** Largest power of two strictly below n (n >= 2). */
function splitPoint(n) {
  return 2 ** floorLog2(n - 1);
}

/** The maximal perfect subtrees covering [lo, hi), left to right, as [level, index]. */
function rangeNodes(lo, hi) {
  const out = [];
  while (lo < hi) {
    let level = floorLog2(hi - lo);
    while (lo % 2 ** level) level--;
    out.push([level, lo / 2 ** level]);
    lo += 2 ** level;
  }
  return out;
}

/** Leaf ranges whose MTHs are the audit path PATH(index, D[0:size]), leaf sibling first. */
function inclusionRanges(index, size) {
  const out = [];
  let lo = 0;
  let hi = size;
  while (hi - lo > 1) {
    const k = splitPoint(hi - lo);
    if (index - lo < k) {
      out.push([lo + k, hi]);
      hi = lo + k;
    } else {
      out.push([lo, lo + k]);
      lo += k;
    }
  }
  return out.reverse();
}

/** Leaf ranges whose MTHs are PROOF(old, D[0:size]) (RFC 6962 §2.1.2), 0 < old < size. */
function consistencyRanges(old, size) {
  const out = [];
  let lo = 0;
  let hi = size;
  let m = old;
  let complete = true;
  for (;;) {
    const n = hi - lo;
    if (m === n) {
      if (!complete) out.push([lo, hi]);
      break;
    }
    const k = splitPoint(n);
    if (m <= k) {
      out.push([lo + k, hi]);
      hi = lo + k;
    } else {
      out.push([lo, lo + k]);
      lo += k;
      m -= k;
      complete = false;
    }
  }
  return out.reverse();
}

function parseBundle(data, count) {
  const out = [];
  let pos = 0;
  while (pos < data.length) {
    if (out.length >= count || pos + 2 > data.length) return null;
    const n = (data[pos] << 8) | data[pos + 1];
    pos += 2;
    if (pos + n > data.length) return null;
    out.push(data.slice(pos, pos + n));
    pos += n;
  }
  return out.length === count ? out : null;
}

/**
 * Proofs and hashes of the tree of `treeSize` leaves, computed from its C2SP tiles.
 * `fetchTile(path)` returns the tile's bytes (Uint8Array). Tiles are fetched at the width the
 * tree size implies (full where full, else the partial width), never wider, and cached in
 * the instance (one instance per tree size, so no tile of one tree serves another).
 */
export class TileReader {
  constructor(fetchTile, treeSize) {
    if (typeof fetchTile !== 'function') fail('bad_argument', 'fetchTile must be a function');
    checkUint(treeSize, 'treeSize');
    this.fetchTile = fetchTile;
    this.treeSize = treeSize;
    this._tiles = new Map(); // path -> Promise<Uint8Array>
    this._nodes = new Map(); // "level/index" -> Promise<Uint8Array>
  }

  /** Fetch (once) the tile at `path`, which must hold `length` bytes. */
  _fetch(path, check) {
    let p = this._tiles.get(path);
    if (!p) {
      p = (async () => {
        const got = await this.fetchTile(path);
        if (!(got instanceof Uint8Array)) fail('bad_tile', `fetchTile(${path}) did not return bytes`, { path });
        return check(got);
      })();
      p.catch(() => this._tiles.delete(path)); // a failed fetch may be retried
      this._tiles.set(path, p);
    }
    return p;
  }

  _hashTile(level, index) {
    const width = tileWidthAt(level, index, this.treeSize);
    const path = tilePath(level, index, width);
    return this._fetch(path, (data) => {
      if (data.length !== width * HASH_SIZE) {
        fail('bad_tile', `tile ${path} has ${data.length} bytes, not ${width * HASH_SIZE}`, { path });
      }
      return data;
    });
  }

  /**
   * Hash of the perfect subtree of height `level` over leaves [index·2^level, (index+1)·2^level),
   * which must lie within the tree: level 8L+j folds 2^j hashes of a level-L tile (memoised).
   */
  async nodeHash(level, index) {
    checkUint(level, 'level');
    checkUint(index, 'index');
    if (level > 53 || (index + 1) * 2 ** level > this.treeSize) {
      fail('bad_argument', `node ${level}/${index} is not in the tree of size ${this.treeSize}`, { level, index });
    }
    return this._node(level, index);
  }

  _node(level, index) {
    const key = `${level}/${index}`;
    let p = this._nodes.get(key);
    if (!p) {
      p = level % TILE_HEIGHT === 0
        ? this._hashTile(level / TILE_HEIGHT, Math.floor(index / TILE_WIDTH)).then((tile) => {
          const off = (index % TILE_WIDTH) * HASH_SIZE;
          return tile.slice(off, off + HASH_SIZE);
        })
        : Promise.all([this._node(level - 1, 2 * index), this._node(level - 1, 2 * index + 1)])
          .then(([l, r]) => nodeHashOf(l, r));
      p.catch(() => this._nodes.delete(key));
      this._nodes.set(key, p);
    }
    return p;
  }

  /**
   * RFC 6962 MTH of leaves [start, end) (SHA-256("") when empty), folding its maximal aligned
   * perfect subtrees right to left: exact for every range of a root or a proof (start aligned
   * to the largest power of two not above end - start), as client/merkle.range_nodes.
   */
  async subtreeHash(start, end) {
    checkUint(start, 'start');
    checkUint(end, 'end');
    if (start > end || end > this.treeSize) fail('bad_argument', `range [${start}, ${end}) is not in the tree of size ${this.treeSize}`);
    if (start === end) return EMPTY_ROOT.slice();
    const hashes = await Promise.all(rangeNodes(start, end).map(([l, i]) => this.nodeHash(l, i)));
    let h = hashes[hashes.length - 1];
    for (let i = hashes.length - 2; i >= 0; i--) h = await nodeHashOf(hashes[i], h);
    return h;
  }

  /** RFC 6962 audit path for leaf `index` in the tree of `size` <= treeSize leaves. */
  async inclusionProof(index, size) {
    checkUint(index, 'index');
    checkUint(size, 'size');
    if (index >= size || size > this.treeSize) fail('bad_argument', `need index < size <= ${this.treeSize}`, { index, size });
    return Promise.all(inclusionRanges(index, size).map(([lo, hi]) => this.subtreeHash(lo, hi)));
  }

  /** RFC 6962 consistency proof from `old` to `size` <= treeSize leaves (empty for 0 or equal). */
  async consistencyProof(old, size) {
    checkUint(old, 'old');
    checkUint(size, 'size');
    if (old > size || size > this.treeSize) fail('bad_argument', `need old <= size <= ${this.treeSize}`, { old, size });
    if (old === 0 || old === size) return [];
    return Promise.all(consistencyRanges(old, size).map(([lo, hi]) => this.subtreeHash(lo, hi)));
  }

  /** Entry `index` from its entry bundle (u16be length || entry, repeated). Not verified. */
  async entry(index) {
    checkUint(index, 'index');
    if (index >= this.treeSize) fail('bad_argument', `entry ${index} is not in the tree of size ${this.treeSize}`);
    const n = Math.floor(index / TILE_WIDTH);
    const width = tileWidthAt(0, n, this.treeSize);
    const path = tilePath('entries', n, width);
    const entries = await this._fetch(path, (data) => {
      const parsed = parseBundle(data, width);
      if (!parsed) fail('bad_tile', `entry bundle ${path} does not hold ${width} entries`, { path });
      return parsed;
    });
    return entries[index % TILE_WIDTH].slice();
  }
}

// --- proof verification (RFC 9162 §2.1.3.2 and §2.1.4.2) ------------------------------------

function checkHash(h, what) {
  if (!(h instanceof Uint8Array) || h.length !== HASH_SIZE) fail('bad_proof', `${what} is not 32 bytes`);
}

function checkProof(proof) {
  if (!Array.isArray(proof)) fail('bad_proof', 'proof must be a list of hashes');
  proof.forEach((h) => checkHash(h, 'proof hash'));
}

const isOdd = (n) => n % 2 === 1;
const half = (n) => Math.floor(n / 2); // n >> 1 without the 32-bit truncation of JS shifts

/** The root an audit path commits to. Throws 'bad_proof' for a path of the wrong length. */
export async function rootFromInclusion(index, size, leafHashBytes, proof) {
  checkUint(index, 'index', 'bad_proof');
  checkUint(size, 'size', 'bad_proof');
  if (index >= size) fail('bad_proof', `index ${index} is not below tree size ${size}`, { index, size });
  checkHash(leafHashBytes, 'leaf hash');
  checkProof(proof);
  let fn = index;
  let sn = size - 1;
  let r = leafHashBytes;
  for (const p of proof) {
    if (sn === 0) fail('bad_proof', 'inclusion proof is too long', { index, size, length: proof.length });
    if (isOdd(fn) || fn === sn) {
      r = await nodeHashOf(p, r);
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      r = await nodeHashOf(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0) fail('bad_proof', 'inclusion proof is too short', { index, size, length: proof.length });
  return r;
}

/** Throws 'inclusion_mismatch' ({expected, computed}) unless the path proves the leaf under root. */
export async function verifyInclusion(index, size, leafHashBytes, proof, root) {
  checkHash(root, 'root');
  const computed = await rootFromInclusion(index, size, leafHashBytes, proof);
  if (!equal(computed, root)) {
    fail('inclusion_mismatch', `inclusion proof for index ${index} does not match the root of size ${size}`, {
      expected: b64encode(root),
      computed: b64encode(computed),
      index,
      size,
    });
  }
  return true;
}

/**
 * Check that tree `oldSize` is a prefix of tree `newSize` (root `newRoot`); returns the old
 * root the proof commits to. When `oldSize` is a power of two the proof omits the old root, so
 * it must be given ('old_root_required'). Edge cases as client/merkle.verify_consistency: from
 * size 0 the proof is empty (old root: the empty root); equal sizes need an empty proof and
 * equal roots. Throws 'bad_proof' (malformed) or 'consistency_mismatch' ({which, expected, computed}).
 */
export async function verifyConsistency(oldSize, newSize, proof, newRoot, oldRoot = null) {
  checkUint(oldSize, 'oldSize', 'bad_proof');
  checkUint(newSize, 'newSize', 'bad_proof');
  if (oldSize > newSize) fail('bad_proof', `old size ${oldSize} is larger than new size ${newSize}`);
  checkHash(newRoot, 'new root');
  if (oldRoot !== null) checkHash(oldRoot, 'old root');
  checkProof(proof);
  const mismatch = (which, expected, computed) => fail('consistency_mismatch',
    `consistency proof does not match the root of size ${which === 'old' ? oldSize : newSize}`,
    { which, expected: b64encode(expected), computed: b64encode(computed), oldSize, newSize });
  if (oldSize === 0) {
    if (proof.length) fail('bad_proof', 'consistency proof from size 0 must be empty');
    if (oldRoot && !equal(oldRoot, EMPTY_ROOT)) mismatch('old', EMPTY_ROOT, oldRoot);
    return EMPTY_ROOT.slice();
  }
  if (oldSize === newSize) {
    if (proof.length) fail('bad_proof', 'consistency proof between equal sizes must be empty');
    if (oldRoot && !equal(oldRoot, newRoot)) mismatch('old', newRoot, oldRoot);
    return newRoot;
  }
  if (!proof.length) fail('bad_proof', 'consistency proof is empty');
  const path = [...proof];
  if (2 ** floorLog2(oldSize) === oldSize) {
    if (!oldRoot) fail('old_root_required', `the old root is needed: size ${oldSize} is a power of two`);
    path.unshift(oldRoot);
  }
  let fn = oldSize - 1;
  let sn = newSize - 1;
  while (isOdd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0) fail('bad_proof', 'consistency proof is too long');
    if (isOdd(fn) || fn === sn) {
      fr = await nodeHashOf(c, fr);
      sr = await nodeHashOf(c, sr);
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      sr = await nodeHashOf(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0) fail('bad_proof', 'consistency proof is too short');
  if (oldRoot && !equal(fr, oldRoot)) mismatch('old', oldRoot, fr);
  if (!equal(sr, newRoot)) mismatch('new', newRoot, sr);
  return fr;
}

// --- leaves ---------------------------------------------------------------------------------

/** RFC 8785 (JCS) of parsed JSON: sorted keys (UTF-16 order), safe integers, no floats. */
function jcs(v) {
  if (v === null || v === true || v === false) return String(v);
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new Error('not a safe integer');
    return String(v);
  }
  if (typeof v === 'string') {
    if (!wellFormed(v)) throw new Error('lone surrogate');
    return JSON.stringify(v); // JCS string escaping is ECMAScript's
  }
  if (Array.isArray(v)) return `[${v.map(jcs).join(',')}]`;
  return `{${Object.keys(v).sort().map((k) => `${jcs(k)}:${jcs(v[k])}`).join(',')}}`;
}

function parseJson(bytes) {
  try {
    return { ok: true, value: JSON.parse(decoder.decode(bytes)) };
  } catch {
    return { ok: false };
  }
}

/** The JSON value's canonical bytes equal `bytes` exactly (one record, one leaf). */
function isCanonical(value, bytes) {
  try {
    return equal(utf8(jcs(value)), bytes);
  } catch {
    return false;
  }
}

const hasKeys = (v, keys) => isObject(v) && Object.keys(v).length === keys.length && keys.every((k) => Object.hasOwn(v, k));
const isStr = (v) => typeof v === 'string';
const DIGEST64 = /^[0-9a-f]{64}$/;
const SIGNER = /^sha256:[0-9a-f]{64}$/;
const MAX_ENVELOPE_SIGNATURES = 16;

function validSig(s) {
  return hasKeys(s, ['key', 'sig', 'signer']) && Object.values(s).every(isStr) && SIGNER.test(s.signer);
}

/** The v1 record schema exactly (client/attest._valid_record). */
function validRecord(kind, rec) {
  if (kind === 0x02) {
    const d = rec.digest;
    return hasKeys(rec, ['digest', 'signature']) && hasKeys(d, ['sha256']) && isStr(d.sha256)
      && DIGEST64.test(d.sha256) && validSig(rec.signature);
  }
  const keys = Object.keys(rec);
  const allowed = ['attestation', 'payload_sha256', 'payload_type', 'signatures', 'statement'];
  if (!allowed.slice(0, 4).every((k) => Object.hasOwn(rec, k)) || !keys.every((k) => allowed.includes(k))) return false;
  const sigs = rec.signatures;
  if (!(isStr(rec.attestation) && DIGEST64.test(rec.attestation) && isStr(rec.payload_sha256)
    && DIGEST64.test(rec.payload_sha256) && isStr(rec.payload_type) && Array.isArray(sigs)
    && sigs.length >= 1 && sigs.length <= MAX_ENVELOPE_SIGNATURES && sigs.every(validSig))) return false;
  if (!Object.hasOwn(rec, 'statement')) return true;
  const st = rec.statement;
  if (!(hasKeys(st, ['predicate_type', 'subjects', 'subjects_total']) && isStr(st.predicate_type)
    && Array.isArray(st.subjects) && Number.isInteger(st.subjects_total)
    && st.subjects_total >= st.subjects.length)) return false;
  return st.subjects.every((x) => hasKeys(x, ['digest']) && isObject(x.digest) && Object.values(x.digest).every(isStr));
}

// protobuf-specs HashAlgorithm -> [WebCrypto name, hashlib name, size] (client/rekorleaf.py)
const REKOR_HASHES = new Map([
  ['SHA2_256', ['SHA-256', 'sha256', 32]],
  ['SHA2_384', ['SHA-384', 'sha384', 48]],
  ['SHA2_512', ['SHA-512', 'sha512', 64]],
]);
const REKOR_KEY_DETAILS = new Map([
  ['PKIX_ECDSA_P256_SHA_256', 'SHA2_256'],
  ['PKIX_ECDSA_P384_SHA_384', 'SHA2_384'],
  ['PKIX_ECDSA_P521_SHA_512', 'SHA2_512'],
  ['PKIX_RSA_PKCS1V15_2048_SHA256', 'SHA2_256'],
  ['PKIX_RSA_PKCS1V15_3072_SHA256', 'SHA2_256'],
  ['PKIX_RSA_PKCS1V15_4096_SHA256', 'SHA2_256'],
]);
const REKOR_PREFIX = utf8('{"apiVersion":"0.0.2","kind":"hashedrekord","spec":{');

/** Canonical standard base64 (what protojson emits), non-empty, or null. */
function unb64(v) {
  if (!isStr(v) || !v) return null;
  try {
    return b64decode(v);
  } catch {
    return null;
  }
}

/** A canonical Rekor v2 hashedrekord v0.0.2 leaf (client/rekorleaf.parse_rekor_leaf), or null. */
function parseRekorLeaf(leaf) {
  if (leaf.length < REKOR_PREFIX.length || !equal(leaf.subarray(0, REKOR_PREFIX.length), REKOR_PREFIX)) return null;
  const { ok, value: doc } = parseJson(leaf);
  if (!ok || !hasKeys(doc, ['apiVersion', 'kind', 'spec']) || !hasKeys(doc.spec, ['hashedRekordV002'])) return null;
  const body = doc.spec.hashedRekordV002;
  if (!hasKeys(body, ['data', 'signature']) || !hasKeys(body.data, ['algorithm', 'digest'])
    || !hasKeys(body.signature, ['content', 'verifier'])) return null;
  const verifier = body.signature.verifier;
  if (!isObject(verifier) || Object.keys(verifier).length !== 2 || !Object.hasOwn(verifier, 'keyDetails')) return null;
  const kind = Object.hasOwn(verifier, 'publicKey') ? 'publicKey' : 'x509Certificate';
  if (!hasKeys(verifier[kind], ['rawBytes'])) return null;
  const alg = body.data.algorithm;
  const details = verifier.keyDetails;
  const digestBytes = unb64(body.data.digest);
  const signature = unb64(body.signature.content);
  let keyDer = unb64(verifier[kind].rawBytes);
  if (!REKOR_HASHES.has(alg) || REKOR_KEY_DETAILS.get(details) !== alg || !digestBytes || !signature
    || !keyDer || digestBytes.length !== REKOR_HASHES.get(alg)[2]) return null;
  let certificate = null;
  if (kind === 'x509Certificate') {
    certificate = keyDer;
    keyDer = certificateSpki(certificate);
    if (!keyDer) return null;
  }
  if (!isCanonical(doc, leaf)) return null;
  return { doc, entry: { algorithm: alg, digest: digestBytes, signature, keyDer, keyDetails: details, certificate } };
}

/**
 * What a leaf is (client/attest.parse_leaf), async because a Rekor v2 leaf's signer is the
 * SHA-256 of its key. Kinds: 0x01 0x01 || JCS (DSSE record) "dsse", 0x01 0x02 || JCS
 * "hashedrekord", canonical Rekor v2 hashedrekord Entry JSON "rekor", anything else "raw".
 * Only byte-for-byte canonical leaves count: anything else is "raw".
 * -> {kind, record (parsed JSON or null), signers: ["sha256:<hex>"], subjects: [{alg: hex}],
 *     predicateType (string or null), rekor (for "rekor": {algorithm, digest, signature,
 *     keyDer, keyDetails, certificate}), leaf}
 * signers/subjects/predicateType are the search terms of client/attest.search_keys.
 */
export async function parseLeaf(bytes) {
  const leaf = asBytes(bytes, 'leaf');
  const raw = { kind: 'raw', record: null, signers: [], subjects: [], predicateType: null, leaf };
  if (leaf[0] === 0x7b) {
    const rekor = parseRekorLeaf(leaf);
    if (!rekor) return raw;
    const { entry } = rekor;
    return {
      kind: 'rekor',
      record: rekor.doc,
      signers: [`sha256:${hex(await sha256(entry.keyDer))}`],
      subjects: [{ [REKOR_HASHES.get(entry.algorithm)[1]]: hex(entry.digest) }],
      predicateType: null, // in the envelope, not the leaf: see checkEnvelope
      rekor: entry,
      leaf,
    };
  }
  if (leaf.length < 3 || leaf[0] !== 0x01 || (leaf[1] !== 0x01 && leaf[1] !== 0x02)) return raw;
  const rest = leaf.subarray(2);
  const { ok, value: rec } = parseJson(rest);
  if (!ok || !isObject(rec) || !validRecord(leaf[1], rec) || !isCanonical(rec, rest)) return raw;
  if (leaf[1] === 0x02) {
    return {
      kind: 'hashedrekord',
      record: rec,
      signers: [rec.signature.signer],
      subjects: [{ sha256: rec.digest.sha256 }],
      predicateType: null,
      leaf,
    };
  }
  return {
    kind: 'dsse',
    record: rec,
    signers: rec.signatures.map((s) => s.signer),
    subjects: rec.statement ? rec.statement.subjects.map((s) => ({ ...s.digest })) : [],
    predicateType: rec.statement ? rec.statement.predicate_type : null,
    leaf,
  };
}

/** DSSE v1 pre-authentication encoding: "DSSEv1 <len(type)> <type> <len(body)> <body>". */
export function pae(payloadType, payload) {
  const t = utf8(payloadType);
  const p = asBytes(payload, 'payload');
  return concat(utf8(`DSSEv1 ${t.length} `), t, utf8(` ${p.length} `), p);
}

const isIntoto = (t) => t === 'application/vnd.in-toto+json'
  || (t.startsWith('application/vnd.in-toto.') && t.endsWith('+json'));

/** A DSSE envelope from parsed JSON, as strictly as client/attest.parse_envelope. */
function parseEnvelope(doc) {
  const bad = (message) => fail('malformed_envelope', message);
  if (!isObject(doc)) bad('the envelope must be a JSON object');
  const { payload, payloadType, signatures } = doc;
  if (!isStr(payload) || !isStr(payloadType) || !Array.isArray(signatures)) {
    bad('a DSSE envelope needs string payload and payloadType and a signatures list');
  }
  if (!payloadType || codePoints(payloadType, 256) > 256 || /[\x00-\x1f]/.test(payloadType)) {
    bad('payloadType must be 1-256 printable characters');
  }
  if (!signatures.length || signatures.length > MAX_ENVELOPE_SIGNATURES) bad('an envelope needs 1-16 signatures');
  let data;
  const sigs = [];
  try {
    data = b64decodeAny(payload);
    for (const s of signatures) {
      if (!isObject(s) || !isStr(s.sig)) bad('each signature needs a base64 sig');
      const keyid = Object.hasOwn(s, 'keyid') ? s.keyid : '';
      if (!isStr(keyid) || codePoints(keyid, 1024) > 1024) bad('keyid must be a string');
      const sig = b64decodeAny(s.sig);
      if (!sig.length || sig.length > 1024) bad('a signature must be 1-1024 bytes');
      sigs.push({ keyid, sig });
    }
  } catch (err) {
    if (err.code === 'bad_base64') bad(`bad base64 in the envelope: ${err.message}`);
    throw err;
  }
  return { payloadType, payload: data, signatures: sigs };
}

/**
 * Check a DSSE envelope against the leaf that logs it (`leafInfo` from parseLeaf, or the leaf
 * bytes). DSSE leaf: SHA-256(envelopeBytes) must be the record's `attestation` (and the payload
 * its payload_sha256 and type). Rekor v2 leaf: SHA-256/384/512 of the envelope's PAE must be the
 * leaf's digest and its single signature the leaf's (client/attest.rekor_envelope_matches).
 * Throws 'envelope_mismatch' (evidence {expected, computed}; digests of DSSE records in hex,
 * named *_hex) or 'malformed_envelope'.
 * -> {payloadType, payload: Uint8Array, statement (parsed in-toto JSON or null), signatures: [{keyid, sig}]}
 */
export async function checkEnvelope(leafInfo, envelopeBytes) {
  const info = leafInfo instanceof Uint8Array ? await parseLeaf(leafInfo) : leafInfo;
  const bytes = asBytes(envelopeBytes, 'envelope');
  if (!info || (info.kind !== 'dsse' && info.kind !== 'rekor')) {
    fail('envelope_mismatch', `a ${info?.kind ?? 'missing'} leaf logs no DSSE envelope`);
  }
  let env;
  if (info.kind === 'dsse') {
    const computed = hex(await sha256(bytes));
    if (computed !== info.record.attestation) {
      fail('envelope_mismatch', 'the envelope does not hash to the leaf\'s attestation digest', {
        expected_hex: info.record.attestation,
        computed_hex: computed,
      });
    }
    const { ok, value } = parseJson(bytes);
    if (!ok) fail('malformed_envelope', 'the envelope is not JSON');
    env = parseEnvelope(value);
    const payloadHash = hex(await sha256(env.payload));
    if (env.payloadType !== info.record.payload_type || payloadHash !== info.record.payload_sha256) {
      fail('envelope_mismatch', 'the envelope\'s payload is not the one the leaf records', {
        expected_hex: info.record.payload_sha256,
        computed_hex: payloadHash,
      });
    }
  } else {
    const { ok, value } = parseJson(bytes);
    if (!ok) fail('malformed_envelope', 'the envelope is not JSON');
    env = parseEnvelope(value);
    const { algorithm, digest: want, signature } = info.rekor;
    const got = await digest(REKOR_HASHES.get(algorithm)[0], pae(env.payloadType, env.payload));
    if (!equal(got, want)) {
      fail('envelope_mismatch', 'the envelope\'s PAE does not hash to the leaf\'s digest', {
        expected: b64encode(want),
        computed: b64encode(got),
      });
    }
    if (env.signatures.length !== 1 || !equal(env.signatures[0].sig, signature)) {
      fail('envelope_mismatch', 'the envelope\'s signature is not the one the leaf logs', {
        expected: b64encode(signature),
        computed: env.signatures.map((s) => b64encode(s.sig)).join(' '),
      });
    }
  }
  let statement = null;
  if (isIntoto(env.payloadType)) {
    const parsed = parseJson(env.payload);
    statement = parsed.ok ? parsed.value : null;
  }
  return { payloadType: env.payloadType, payload: env.payload, statement, signatures: env.signatures };
}

// --- signatures of leaves (DSSE over the PAE) -----------------------------------------------

function bigFrom(bytes) {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return n;
}

function modPow(base, exp, mod) {
  let result = 1n;
  base %= mod;
  for (; exp > 0n; exp >>= 1n) {
    if (exp & 1n) result = (result * base) % mod;
    base = (base * base) % mod;
  }
  return result;
}

/**
 * RSASSA-PSS (MGF1-SHA-256, SHA-256) with any salt length (RFC 8017 §9.1.2, salt recovered
 * from the encoded message): what the log accepts, and what WebCrypto cannot check without
 * knowing the salt length. Public data only, so plain BigInt arithmetic is fine.
 */
async function verifyRsaPssAnySalt(n, e, sig, msg) {
  const modBits = n.toString(2).length;
  const k = Math.ceil(modBits / 8);
  if (sig.length !== k) return false;
  const s = bigFrom(sig);
  if (s >= n) return false;
  const emBits = modBits - 1;
  const emLen = Math.ceil(emBits / 8);
  let m = modPow(s, e, n);
  const em = new Uint8Array(emLen);
  for (let i = emLen - 1; i >= 0; i--, m >>= 8n) em[i] = Number(m & 0xffn);
  if (m !== 0n) return false; // did not fit in emLen bytes
  const hLen = 32;
  if (emLen < hLen + 2 || em[emLen - 1] !== 0xbc) return false;
  const db = em.slice(0, emLen - hLen - 1);
  const h = em.subarray(emLen - hLen - 1, emLen - 1);
  const topMask = 0xff >> (8 * emLen - emBits);
  if (db[0] & ~topMask & 0xff) return false;
  for (let c = 0, pos = 0; pos < db.length; c++) { // MGF1(H)
    const mask = await sha256(concat(h, Uint8Array.of(c >>> 24, (c >>> 16) & 255, (c >>> 8) & 255, c & 255)));
    for (let i = 0; i < hLen && pos < db.length; i++, pos++) db[pos] ^= mask[i];
  }
  db[0] &= topMask;
  let i = 0;
  while (i < db.length && db[i] === 0) i++;
  if (i === db.length || db[i] !== 0x01) return false;
  const salt = db.subarray(i + 1);
  const mHash = await sha256(msg);
  return equal(await sha256(concat(new Uint8Array(8), mHash, salt)), h);
}

/**
 * Re-check a signature of a leaf over `message` (for DSSE: the PAE) with the leaf's key, a
 * base64 DER SPKI. Mirrors client/attest.verify_message: Ed25519; ECDSA P-256/SHA-256 and
 * P-384/SHA-384, DER or raw r||s; RSA 2048-4096 bits, e = 3 or 65537, SHA-256 with PKCS#1 v1.5
 * (WebCrypto) or PSS with any salt length. Returns true, false, or null when the key is of a
 * kind this cannot check (e.g. P-521 or an unknown algorithm).
 */
export async function verifySignature(spkiB64, sigBytes, message) {
  let spki;
  try {
    spki = b64decode(spkiB64);
  } catch {
    return null;
  }
  const info = parseSpki(spki);
  if (!info) return null;
  const sig = asBytes(sigBytes, 'signature');
  const msg = asBytes(message, 'message');
  const s = subtle();
  try {
    if (info.alg === OID.ed25519) {
      if (sig.length !== 64) return false;
      const key = await s.importKey('spki', spki, { name: 'Ed25519' }, false, ['verify']);
      return await s.verify({ name: 'Ed25519' }, key, sig, msg);
    }
    if (info.alg === OID.ecPublicKey) {
      if (info.param !== OID.p256 && info.param !== OID.p384) return null;
      const curve = CURVES[info.param];
      const key = await s.importKey('spki', spki, { name: 'ECDSA', namedCurve: curve.name }, false, ['verify']);
      const candidates = [ecdsaDerToRaw(sig, curve.size)];
      if (sig.length === 2 * curve.size) candidates.push(sig);
      for (const raw of candidates) {
        if (raw && await s.verify({ name: 'ECDSA', hash: curve.hash }, key, raw, msg)) return true;
      }
      return false;
    }
    if (info.alg === OID.rsa) {
      const parts = derRead(info.key, 0);
      const ints = parts && parts.tag === 0x30 && derChildren(info.key, parts.start, parts.end);
      if (!ints || ints.length !== 2 || ints.some((t) => t.tag !== 0x02)) return null;
      const n = bigFrom(info.key.subarray(ints[0].start, ints[0].end));
      const e = bigFrom(info.key.subarray(ints[1].start, ints[1].end));
      const bits = n.toString(2).length;
      if (bits < 2048 || bits > 4096 || (e !== 3n && e !== 65537n)) return null;
      try {
        const key = await s.importKey('spki', spki, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, false, ['verify']);
        if (await s.verify({ name: 'RSASSA-PKCS1-v1_5' }, key, sig, msg)) return true;
      } catch {
        // a key WebCrypto will not import (some refuse e = 3) may still be checked as PSS
      }
      return await verifyRsaPssAnySalt(n, e, sig, msg);
    }
  } catch {
    return false;
  }
  return null;
}

// --- the whole check ------------------------------------------------------------------------

/**
 * What a page does for one entry: verify the checkpoint under the policy, hash the entry
 * (fetched from its entry bundle when `entry` is not given), compute its audit path from the
 * tiles at the checkpoint's size and verify it against the checkpoint's root. `tiles` is a
 * TileReader for the checkpoint's size or a fetchTile function.
 * Throws as verifyCheckpoint, 'index_not_covered' (index >= size), 'tree_size_mismatch',
 * 'bad_tile', 'inclusion_mismatch'.
 * -> {checkpoint: <verifyCheckpoint result>, leafHash, proof, entry}
 */
export async function verifyEntry({ index, entry, noteText, policy, tiles, now }) {
  const checkpoint = await verifyCheckpoint(noteText, policy, { now });
  const { size, root } = checkpoint.checkpoint;
  checkUint(index, 'index');
  if (index >= size) fail('index_not_covered', `entry ${index} is not in the checkpoint of size ${size}`, { index, size });
  const reader = typeof tiles === 'function' ? new TileReader(tiles, size) : tiles;
  if (!reader || typeof reader.inclusionProof !== 'function') fail('bad_argument', 'tiles must be a TileReader or a fetchTile function');
  if (reader.treeSize !== size) {
    fail('tree_size_mismatch', `the tiles are read for size ${reader.treeSize}, the checkpoint is for ${size}`, {
      tiles: reader.treeSize,
      checkpoint: size,
    });
  }
  const bytes = entry === undefined || entry === null ? await reader.entry(index) : asBytes(entry, 'entry');
  const lh = await leafHash(bytes);
  const proof = await reader.inclusionProof(index, size);
  await verifyInclusion(index, size, lh, proof, root);
  return { checkpoint, leafHash: lh, proof, entry: bytes };
}
