// Check tlog/explorer/static/verify.js against vectors made by the Python code
// (tests/test_explorer_verify.py writes them):
//
//   node tests/js/explorer_verify_test.mjs VECTORS.json
//
// Prints one line per failed check and a summary; exits 0 only when every check passed
// ("all checks passed"), 1 when one failed, 2 when the harness itself cannot run.

import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

if (process.argv.length !== 3) {
  process.stderr.write('usage: node explorer_verify_test.mjs VECTORS.json\n');
  process.exit(2);
}
const vectors = JSON.parse(readFileSync(process.argv[2], 'utf8'));

// verify.js is an ES module named .js outside any package.json saying "type": "module", which
// Node 20 would load as CommonJS: import a byte-identical copy named .mjs instead.
const here = dirname(fileURLToPath(import.meta.url));
const source = process.env.VERIFY_JS ?? join(here, '..', '..', 'tlog', 'explorer', 'static', 'verify.js'); // override: mutation tests
const tmp = mkdtempSync(join(tmpdir(), 'verifyjs-'));
let V;
try {
  copyFileSync(source, join(tmp, 'verify.mjs'));
  V = await import(pathToFileURL(join(tmp, 'verify.mjs')).href);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

// --- a tiny harness -------------------------------------------------------------------------

let passed = 0;
const failures = [];
const sections = [];

function check(ok, what, detail = '') {
  if (ok) passed++;
  else failures.push(detail ? `${what}: ${detail}` : what);
}

/** Runs fn; the outcome must be `expect`: "ok" (no throw) or a VerificationError code. */
async function outcome(fn) {
  try {
    return { code: 'ok', value: await fn() };
  } catch (err) {
    if (err instanceof V.VerificationError) return { code: err.code, err };
    return { code: `exception ${err?.stack ?? err}` };
  }
}

async function expectCode(fn, expect, what) {
  const got = await outcome(fn);
  check(got.code === expect, what, `got ${got.code}${got.err ? ` (${got.err.message})` : ''}, expected ${expect}`);
  return got;
}

const b64 = (s) => V.b64decode(s);
const eqBytes = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
const eqB64 = (bytes, s) => V.b64encode(bytes) === s;
const flip = (bytes, pos = 0) => {
  const out = bytes.slice();
  out[pos % out.length] ^= 1;
  return out;
};

async function section(name, fn) {
  const before = passed + failures.length;
  const start = Date.now();
  try {
    await fn();
  } catch (err) { // a bug that throws must fail the check it was in, not hide the others
    check(false, `section "${name}" threw`, err?.stack ?? String(err));
  }
  sections.push(`${name}: ${passed + failures.length - before} checks, ${Date.now() - start} ms`);
}

// --- tiles as the log serves them -----------------------------------------------------------

const tiles = new Map(Object.entries(vectors.tiles).map(([p, d]) => [p, b64(d)]));
const allowed = new Map(Object.entries(vectors.tile_sets).map(([n, paths]) => [Number(n), new Set(paths)]));
const fetched = [];

/** A fetchTile for tree `size` that only serves tiles a client may fetch at that size. */
function fetchFor(size, tamper = null) {
  return async (path) => {
    fetched.push(path);
    const ok = allowed.get(size);
    if (!ok || !ok.has(path)) throw new Error(`fetched ${path}, which does not exist at size ${size}`);
    const data = tiles.get(path);
    if (!data) throw new Error(`the vectors do not hold ${path}`);
    return tamper ? tamper(path, data.slice()) : data.slice();
  };
}

const readers = new Map();
function reader(size) {
  if (!readers.has(size)) readers.set(size, new V.TileReader(fetchFor(size), size));
  return readers.get(size);
}

// --- sections -------------------------------------------------------------------------------

await section('encodings', async () => {
  check(V.canVerify(), 'canVerify() under Node');
  for (const n of [0, 1, 2, 3, 4, 5, 31, 32, 33, 100]) {
    const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 37 + n) & 255);
    const text = V.b64encode(bytes);
    check(text === Buffer.from(bytes).toString('base64'), `b64encode of ${n} bytes`);
    check(eqBytes(V.b64decode(text), bytes), `b64decode of ${n} bytes`);
    check(V.hex(bytes) === Buffer.from(bytes).toString('hex'), `hex of ${n} bytes`);
  }
  for (const bad of ['A', 'AA', 'AAA', 'AA=', 'AB==', 'AAB=', 'A===', '====', 'AA==AA==', 'AA-_', 'AA AA==', ' AAA', 'AAAA\n', null, 5]) {
    await expectCode(() => V.b64decode(bad), 'bad_base64', `b64decode(${JSON.stringify(bad)})`);
  }
  await expectCode(() => V.b64decode('AAAA', 4), 'bad_base64', 'b64decode with the wrong length');
  const lh = await V.leafHash(new TextEncoder().encode('hello world'));
  check(V.b64encode(lh) === 'TszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=', 'leafHash("hello world") (specs.md §8.2)');
  check(V.hex(await V.sha256(new Uint8Array())) === 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', 'sha256("")');
  for (const t of vectors.tile_paths) {
    check(V.tilePath(t.level, t.index, t.width) === t.path, `tilePath(${t.level}, ${t.index}, ${t.width})`, V.tilePath(t.level, t.index, t.width));
  }
  check(V.tilePath(0, 1234067) === 'tile/0/x001/x234/067', 'tilePath default width');
  for (const [l, i, w] of [[64, 0, 1], [-1, 0, 1], [0, -1, 1], [0, 0, 0], [0, 0, 257], ['data', 0, 1], [0, 1.5, 1]]) {
    await expectCode(() => V.tilePath(l, i, w), 'bad_argument', `tilePath(${l}, ${i}, ${w})`);
  }
});

await section('verifier keys', async () => {
  for (const c of vectors.hostile_vkeys) {
    const got = await outcome(() => V.parseVkey(c.vkey));
    if (!c.python.ok) {
      check(got.code === 'bad_vkey', `parseVkey refuses "${c.why}" as Python does`, `got ${got.code}`);
      continue;
    }
    check(got.code === 'ok', `parseVkey accepts "${c.why}" as Python does`, got.err?.message ?? got.code);
    if (got.code !== 'ok') continue;
    const v = got.value;
    check(v.name === c.python.name && V.hex(v.keyId) === c.python.key_id && v.type === c.python.type
      && eqB64(v.key, c.python.key) && v.vkey === c.vkey, `parseVkey "${c.why}" fields`);
  }
});

await section('notes', async () => {
  for (const c of vectors.hostile_notes) {
    const bytes = b64(c.bytes);
    let text = null;
    try {
      text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
    } catch { /* not UTF-8: only the bytes form applies */ }
    for (const [form, input] of [['bytes', bytes], ['string', text]]) {
      if (input === null) continue;
      const got = await outcome(() => V.parseNote(input));
      if (!c.python.ok) {
        check(got.code === 'malformed_note', `parseNote(${form}) refuses "${c.why}" as Python does`, `got ${got.code}`);
        continue;
      }
      check(got.code === 'ok', `parseNote(${form}) accepts "${c.why}" as Python does`, got.err?.message ?? got.code);
      if (got.code !== 'ok') continue;
      const n = got.value;
      const same = n.body === c.python.body && n.signatures.length === c.python.signatures.length
        && n.signatures.every((s, i) => s.name === c.python.signatures[i].name
          && V.hex(s.keyId) === c.python.signatures[i].key_id && eqB64(s.sig, c.python.signatures[i].sig));
      check(same, `parseNote(${form}) "${c.why}" fields`);
    }
  }
  // Lone surrogates cannot come from UTF-8 bytes, only from a JS string.
  await expectCode(() => V.parseNote('a\ud800\n\n\u2014 k AAECA3NpZw==\n'), 'malformed_note', 'parseNote with a lone surrogate');
});

await section('checkpoint bodies', async () => {
  for (const c of vectors.hostile_checkpoints) {
    const got = await outcome(() => V.parseCheckpoint(c.text));
    if (!c.js_ok) {
      check(got.code === 'malformed_checkpoint', `parseCheckpoint refuses "${c.why}"`, `got ${got.code}; Python ok=${c.python.ok}`);
      continue;
    }
    check(got.code === 'ok', `parseCheckpoint accepts "${c.why}" as Python does`, got.err?.message ?? got.code);
    if (got.code !== 'ok') continue;
    const cp = got.value;
    check(cp.origin === c.python.origin && String(cp.size) === c.python.size && eqB64(cp.root, c.python.root)
      && JSON.stringify(cp.extensions) === JSON.stringify(c.python.extensions), `parseCheckpoint "${c.why}" fields`);
  }
});

await section('tiles and roots', async () => {
  for (const [size, root] of Object.entries(vectors.roots)) {
    const got = await V.b64encode(await reader(Number(size)).subtreeHash(0, Number(size)));
    check(got === root, `root of size ${size} from tiles`, got);
  }
  for (const n of vectors.nodes) {
    const got = V.b64encode(await reader(n.size).nodeHash(n.level, n.index));
    check(got === n.hash, `nodeHash(${n.level}, ${n.index}) at size ${n.size}`);
  }
  await expectCode(() => reader(1000).nodeHash(3, 125), 'bad_argument', 'nodeHash beyond the tree');
  await expectCode(() => reader(1000).inclusionProof(1000, 1000), 'bad_argument', 'inclusionProof(index = size)');
  await expectCode(() => reader(1000).inclusionProof(5, 1001), 'bad_argument', 'inclusionProof(size > treeSize)');
  check(V.hex(await reader(3).subtreeHash(0, 0)) === 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', 'subtreeHash of nothing');
  for (const e of vectors.entries) {
    const got = await reader(e.size).entry(e.index);
    check(eqB64(got, e.entry), `entry ${e.index} from its bundle at size ${e.size}`);
  }
  // A tile of the wrong length, a bundle that does not parse, a fetch that fails.
  const short = new V.TileReader(fetchFor(1000, (path, d) => (path.startsWith('tile/0/') ? d.slice(1) : d)), 1000);
  await expectCode(() => short.nodeHash(0, 3), 'bad_tile', 'a short tile');
  const badBundle = new V.TileReader(fetchFor(1000, (path, d) => (path.startsWith('tile/entries/') ? d.slice(0, -1) : d)), 1000);
  await expectCode(() => badBundle.entry(3), 'bad_tile', 'a truncated entry bundle');
  let calls = 0;
  const flaky = new V.TileReader(async (path) => {
    calls++;
    if (calls === 1) throw new Error('network down');
    return fetchFor(257)(path);
  }, 257);
  const first = await outcome(() => flaky.nodeHash(0, 1));
  check(first.code.startsWith('exception') && first.code.includes('network down'), 'a failed fetch rejects', first.code);
  check(eqBytes(await flaky.nodeHash(0, 1), await reader(257).nodeHash(0, 1)), 'a failed fetch is retried, not cached');
  const wrong = fetched.filter((p) => ![...allowed.values()].some((s) => s.has(p)));
  check(wrong.length === 0, 'only tiles that exist at the tree size are fetched', wrong.slice(0, 5).join(' '));
});

await section('inclusion proofs', async () => {
  await Promise.all(vectors.inclusion.map(async (c) => {
    const proof = await reader(c.size).inclusionProof(c.index, c.size);
    const same = proof.length === c.proof.length && proof.every((h, i) => eqB64(h, c.proof[i]));
    check(same, `inclusion proof (${c.index}, ${c.size}) from tiles equals Python's`);
    const lh = await V.leafHash(b64(c.entry));
    check(eqB64(lh, c.leaf_hash), `leafHash of entry ${c.index}`);
    const root = await V.rootFromInclusion(c.index, c.size, lh, proof);
    check(eqB64(root, c.root), `rootFromInclusion (${c.index}, ${c.size})`);
    await expectCode(() => V.verifyInclusion(c.index, c.size, lh, c.proof.map(b64), b64(c.root)), 'ok',
      `verifyInclusion (${c.index}, ${c.size})`);
  }));
  const counts = {};
  await Promise.all(vectors.inclusion_mutations.map(async (c) => {
    counts[c.expect] = (counts[c.expect] ?? 0) + 1;
    const got = await expectCode(() => V.verifyInclusion(c.index, c.size, b64(c.leaf_hash), c.proof.map(b64), b64(c.root)),
      c.expect, `verifyInclusion refuses "${c.why}" (${c.index}, ${c.size}) as Python does`);
    if (got.code === 'inclusion_mismatch') {
      check(got.err.evidence.expected === c.root && typeof got.err.evidence.computed === 'string',
        'inclusion_mismatch evidence names the roots');
    }
  }));
  check((counts.bad_proof ?? 0) > 10 && (counts.inclusion_mismatch ?? 0) > 10, 'inclusion mutations cover both refusals', JSON.stringify(counts));
  const h = new Uint8Array(32);
  await expectCode(() => V.rootFromInclusion(0, 0, h, []), 'bad_proof', 'inclusion in an empty tree');
  await expectCode(() => V.rootFromInclusion(0, 2, h, [new Uint8Array(31)]), 'bad_proof', 'a proof hash of 31 bytes');
  await expectCode(() => V.rootFromInclusion(0, 2 ** 53, h, []), 'bad_proof', 'a size above 2^53-1');
  await expectCode(() => V.rootFromInclusion(0, 1, h.slice(1), []), 'bad_proof', 'a leaf hash of 31 bytes');
  await expectCode(() => V.verifyConsistency(0, 5, [h], h), 'bad_proof', 'a consistency proof from 0 that is not empty');
  await expectCode(() => V.verifyConsistency(6, 5, [h], h), 'bad_proof', 'a consistency proof backwards');
  await expectCode(() => V.verifyConsistency(3, 5, [], h), 'bad_proof', 'an empty consistency proof');
});

await section('trees beyond 2^32 leaves', async () => {
  // A tree whose leaves are all equal, so each level has one hash and its tiles can be made up
  // here: what is checked is the index arithmetic at sizes up to 2^53-1.
  const u = vectors.uniform;
  const levels = u.levels.map(b64);
  const fetchUniform = (size) => async (path) => {
    const m = /^tile\/(\d+)\/((?:x\d{3}\/)*\d{3})(?:\.p\/(\d+))?$/.exec(path);
    if (!m) throw new Error(`bad tile path ${path}`);
    const level = Number(m[1]);
    const index = BigInt(m[2].replace(/[x/]/g, ''));
    const count = BigInt(size) >> BigInt(8 * level);
    const want = index < count >> 8n ? 256 : index === count >> 8n ? Number(count & 255n) : 0;
    const width = m[3] === undefined ? 256 : Number(m[3]);
    if (!want || width !== want || (m[3] !== undefined && width === 256)) throw new Error(`tile ${path} does not exist at size ${size}`);
    const out = new Uint8Array(32 * width);
    for (let i = 0; i < width; i++) out.set(levels[8 * level], 32 * i);
    return out;
  };
  const uReaders = new Map();
  const uReader = (size) => {
    if (!uReaders.has(size)) uReaders.set(size, new V.TileReader(fetchUniform(size), size));
    return uReaders.get(size);
  };
  for (const c of u.inclusion) {
    const r = uReader(c.size);
    check(eqB64(await r.subtreeHash(0, c.size), c.root), `root of the uniform tree of size ${c.size}`);
    const proof = await r.inclusionProof(c.index, c.size);
    check(proof.length === c.proof.length && proof.every((h, i) => eqB64(h, c.proof[i])),
      `inclusion proof (${c.index}, ${c.size}) from tiles equals Python's`);
    await expectCode(() => V.verifyInclusion(c.index, c.size, levels[0], c.proof.map(b64), b64(c.root)), 'ok',
      `verifyInclusion (${c.index}, ${c.size})`);
    await expectCode(() => V.verifyInclusion(c.index, c.size, levels[0], c.proof.slice(1).map(b64), b64(c.root)), 'bad_proof',
      `verifyInclusion (${c.index}, ${c.size}) truncated`);
    check(c.proof.length === expectedLength(c.index, c.size), `proof length (${c.index}, ${c.size})`);
  }
  for (const c of u.consistency) {
    const proof = await uReader(c.new).consistencyProof(c.old, c.new);
    check(proof.length === c.proof.length && proof.every((h, i) => eqB64(h, c.proof[i])),
      `consistency proof (${c.old}, ${c.new}) from tiles equals Python's`);
    await expectCode(() => V.verifyConsistency(c.old, c.new, c.proof.map(b64), b64(c.new_root), b64(c.old_root)), 'ok',
      `verifyConsistency (${c.old}, ${c.new})`);
    await expectCode(() => V.verifyConsistency(c.old, c.new, [...c.proof.map(b64), levels[0]], b64(c.new_root), b64(c.old_root)),
      'bad_proof', `verifyConsistency (${c.old}, ${c.new}) extended`);
  }
  await expectCode(() => V.parseCheckpoint(`o\n${2 ** 53}\n${u.levels[0]}\n`), 'malformed_checkpoint', 'a checkpoint of size 2^53');
  await expectCode(async () => new V.TileReader(() => null, 2 ** 53), 'bad_argument', 'a TileReader beyond 2^53-1');
});

function expectedLength(index, size) {
  // inner + popcount(index >> inner), inner = bit length of (index ^ (size - 1)) (specs.md §1.2)
  const bi = BigInt(index);
  const x = bi ^ BigInt(size - 1);
  const inner = x.toString(2).length - (x === 0n ? 1 : 0);
  const border = (bi >> BigInt(inner)).toString(2).split('').filter((c) => c === '1').length;
  return inner + border;
}

await section('consistency proofs', async () => {
  await Promise.all(vectors.consistency.map(async (c) => {
    const proof = await reader(c.new).consistencyProof(c.old, c.new);
    const same = proof.length === c.proof.length && proof.every((h, i) => eqB64(h, c.proof[i]));
    check(same, `consistency proof (${c.old}, ${c.new}) from tiles equals Python's`);
    const got = await expectCode(() => V.verifyConsistency(c.old, c.new, c.proof.map(b64), b64(c.new_root), b64(c.old_root)),
      'ok', `verifyConsistency (${c.old}, ${c.new})`);
    if (got.code === 'ok') check(eqB64(got.value, c.old_root), `verifyConsistency (${c.old}, ${c.new}) returns the old root`);
    const pow2 = c.old > 0 && 2 ** Math.round(Math.log2(c.old)) === c.old;
    if (c.old > 0 && c.old < c.new && pow2) {
      await expectCode(() => V.verifyConsistency(c.old, c.new, c.proof.map(b64), b64(c.new_root)), 'old_root_required',
        `verifyConsistency (${c.old}, ${c.new}) without the old root`);
    } else {
      const alone = await expectCode(() => V.verifyConsistency(c.old, c.new, c.proof.map(b64), b64(c.new_root)), 'ok',
        `verifyConsistency (${c.old}, ${c.new}) without the old root`);
      if (alone.code === 'ok') check(eqB64(alone.value, c.old_root), `verifyConsistency (${c.old}, ${c.new}) proves the old root`);
    }
  }));
  const counts = {};
  await Promise.all(vectors.consistency_mutations.map(async (c) => {
    counts[c.expect] = (counts[c.expect] ?? 0) + 1;
    await expectCode(() => V.verifyConsistency(c.old, c.new, c.proof.map(b64), b64(c.new_root), b64(c.old_root)),
      c.expect, `verifyConsistency refuses "${c.why}" (${c.old}, ${c.new}) as Python does`);
  }));
  check((counts.bad_proof ?? 0) > 10 && (counts.consistency_mismatch ?? 0) > 10, 'consistency mutations cover both refusals', JSON.stringify(counts));
});

await section('checkpoints', async () => {
  for (const c of vectors.checkpoints) {
    const policy = c.policy_doc ?? vectors.policies[c.policy];
    const got = await outcome(() => V.verifyCheckpoint(b64(c.note), policy, { now: c.now }));
    const e = c.expect;
    if (e.code) {
      check(got.code === e.code, `verifyCheckpoint "${c.why}"`, `got ${got.code}${got.err ? ` (${got.err.message})` : ''}, expected ${e.code}`);
      continue;
    }
    if (got.code !== 'ok') {
      check(false, `verifyCheckpoint "${c.why}"`, `got ${got.code}${got.err ? ` (${got.err.message})` : ''}`);
      continue;
    }
    const r = got.value;
    const verified = r.cosignatures.filter((x) => x.verified && !x.future).map((x) => x.name).sort();
    check(r.quorumMet === e.quorumMet, `verifyCheckpoint "${c.why}" quorumMet`, String(r.quorumMet));
    if ('fresh' in e) check(r.fresh === e.fresh, `verifyCheckpoint "${c.why}" fresh`, String(r.fresh));
    if (e.verified) check(JSON.stringify(verified) === JSON.stringify(e.verified), `verifyCheckpoint "${c.why}" verified witnesses`);
    if (e.failed) {
      const failed = r.cosignatures.filter((x) => !x.verified).map((x) => x.name).sort();
      check(JSON.stringify(failed) === JSON.stringify(e.failed), `verifyCheckpoint "${c.why}" failed cosignatures`, JSON.stringify(failed));
    }
    if (e.future) {
      const future = r.cosignatures.filter((x) => x.future).map((x) => x.name).sort();
      check(JSON.stringify(future) === JSON.stringify(e.future), `verifyCheckpoint "${c.why}" future cosignatures`);
    }
    if (e.unknown) {
      check(JSON.stringify(r.unknownSignatures.map((x) => x.name)) === JSON.stringify(e.unknown), `verifyCheckpoint "${c.why}" unknown signatures`);
    }
    if (!c.python.error) { // where Python accepts, it agrees on everything it reports
      check(JSON.stringify(r.logKeys) === JSON.stringify(c.python.log_keys), `verifyCheckpoint "${c.why}" log keys`, JSON.stringify(r.logKeys));
      check(JSON.stringify(verified) === JSON.stringify(c.python.witnesses), `verifyCheckpoint "${c.why}" witnesses as Python`);
      check(r.cosignedAt === c.python.cosigned_at, `verifyCheckpoint "${c.why}" cosignedAt`, `${r.cosignedAt} vs ${c.python.cosigned_at}`);
    }
    if (e.quorumMet && r.cosignatures.length) {
      check(r.newestCosignature === Math.max(...r.cosignatures.filter((x) => x.verified && !x.future).map((x) => x.time)),
        `verifyCheckpoint "${c.why}" newestCosignature`);
    }
  }
  const good = vectors.notes['1000'];
  const r = await V.verifyCheckpoint(good, vectors.policies.full, { now: vectors.now });
  check(r.checkpoint.size === 1000 && eqB64(r.checkpoint.root, vectors.roots['1000']) && r.checkpoint.origin === vectors.origin,
    'verifyCheckpoint returns the parsed checkpoint');
  check(r.cosignatures.every((x) => typeof x.time === 'number' && x.vkey.startsWith(x.name + '+')), 'cosignatures carry time and vkey');
  await expectCode(() => V.verifyCheckpoint(good, { ...vectors.policies.full, origin: 'other.example/log' }, { now: vectors.now }),
    'bad_policy', 'a policy whose log keys are not named after its origin');
});

await section('entries', async () => {
  const now = vectors.now;
  const policy = vectors.policies.full;
  const cases = [];
  for (const size of vectors.sizes) {
    for (const e of vectors.entries.filter((x) => x.size === size)) cases.push([size, e.index, b64(e.entry)]);
    for (const i of vectors.attestation_indexes) if (i < size) cases.push([size, i, null]);
  }
  await Promise.all(cases.map(async ([size, index, entry]) => {
    const note = vectors.notes[String(size)];
    const got = await expectCode(() => V.verifyEntry({ index, entry, noteText: note, policy, tiles: fetchFor(size), now }),
      'ok', `verifyEntry(${index}) at size ${size}`);
    if (got.code !== 'ok') return;
    const r = got.value;
    check(r.checkpoint.quorumMet && r.checkpoint.checkpoint.size === size && r.leafHash.length === 32
      && Array.isArray(r.proof), `verifyEntry(${index}) at size ${size} result`);
    if (entry) {
      await expectCode(() => V.verifyEntry({ index, entry: flip(entry.length ? entry : new Uint8Array(1)), noteText: note, policy, tiles: reader(size), now }),
        'inclusion_mismatch', `verifyEntry refuses a changed entry ${index} at size ${size}`);
      if (size > 1) {
        const other = index === 0 ? 1 : index - 1;
        await expectCode(() => V.verifyEntry({ index: other, entry, noteText: note, policy, tiles: reader(size), now }),
          'inclusion_mismatch', `verifyEntry refuses entry ${index} claimed at ${other}, size ${size}`);
      }
    }
  }));
  const note = vectors.notes['1000'];
  await expectCode(() => V.verifyEntry({ index: 1000, entry: new Uint8Array(1), noteText: note, policy, tiles: reader(1000), now }),
    'index_not_covered', 'verifyEntry of an index at the checkpoint size');
  await expectCode(() => V.verifyEntry({ index: 5, noteText: note, policy, tiles: reader(257), now }),
    'tree_size_mismatch', 'verifyEntry with tiles of another size');
  await expectCode(() => V.verifyEntry({ index: 5, noteText: note.replace('1000\n', '1001\n'), policy, tiles: reader(1000), now }),
    'log_signature_invalid', 'verifyEntry with a changed checkpoint');
  // A forged level-0 tile and bundle, consistent with each other but not with the signed root.
  const forged = (path, d) => {
    if (path === 'tile/0/000') d[40] ^= 1;
    return d;
  };
  await expectCode(() => V.verifyEntry({ index: 5, noteText: note, policy, tiles: fetchFor(1000, forged), now }),
    'inclusion_mismatch', 'verifyEntry against a forged tile');
  // Entry 300's path takes node (8, 0) from tile/1/000.p/3, not from tile/0/000: the forgery
  // is not used and changes nothing; forging the level-1 tile is caught.
  await expectCode(() => V.verifyEntry({ index: 300, noteText: note, policy, tiles: fetchFor(1000, forged), now }),
    'ok', 'verifyEntry of another tile, next to a forged tile it does not use');
  const forged1 = (path, d) => {
    if (path === 'tile/1/000.p/3') d[3] ^= 1;
    return d;
  };
  await expectCode(() => V.verifyEntry({ index: 300, noteText: note, policy, tiles: fetchFor(1000, forged1), now }),
    'inclusion_mismatch', 'verifyEntry against a forged level-1 tile');
});

await section('leaves and envelopes', async () => {
  for (const c of vectors.leaves) {
    const info = await V.parseLeaf(b64(c.leaf));
    check(info.kind === c.kind, `parseLeaf "${c.name}" kind`, `${info.kind}, expected ${c.kind}`);
    const terms = [
      ...info.signers.map((s) => `signer ${s}`),
      ...info.subjects.flatMap((d) => Object.entries(d).map(([alg, h]) => `subject ${alg}:${h}`)),
      ...(info.predicateType === null ? [] : [`predicate_type ${info.predicateType}`]),
    ];
    const want = c.terms.map(([field, term]) => `${field} ${term}`);
    check(JSON.stringify([...new Set(terms)].sort()) === JSON.stringify([...want].sort()), `parseLeaf "${c.name}" terms equal search_keys`,
      `${JSON.stringify(terms)} vs ${JSON.stringify(want)}`);
    if (c.kind === 'raw') check(info.record === null, `parseLeaf "${c.name}" raw has no record`);
    if (c.envelope) {
      const got = await expectCode(() => V.checkEnvelope(info, b64(c.envelope.bytes)), 'ok', `checkEnvelope "${c.name}"`);
      if (got.code === 'ok') {
        const r = got.value;
        check(r.payloadType === c.envelope.payload_type && eqB64(r.payload, c.envelope.payload),
          `checkEnvelope "${c.name}" payload`);
        check((r.statement?.predicateType ?? null) === c.envelope.predicate_type, `checkEnvelope "${c.name}" statement`);
        const msg = V.pae(r.payloadType, r.payload);
        if (c.kind === 'rekor') {
          check(await V.verifySignature(V.b64encode(info.rekor.keyDer), r.signatures[0].sig, msg) === true,
            `the Rekor leaf's signature verifies over the envelope's PAE`);
        }
      }
      const viaBytes = await outcome(() => V.checkEnvelope(b64(c.leaf), b64(c.envelope.bytes)));
      check(viaBytes.code === 'ok', `checkEnvelope "${c.name}" from the leaf bytes`, viaBytes.code);
    }
    for (const bad of c.bad_envelopes) {
      const got = await expectCode(() => V.checkEnvelope(info, b64(bad.bytes)), bad.code, `checkEnvelope "${c.name}" refuses "${bad.why}"`);
      if (got.code === 'envelope_mismatch' && c.kind !== 'hashedrekord') {
        check(Object.keys(got.err.evidence).length >= 2, `checkEnvelope "${c.name}" "${bad.why}" evidence`);
      }
    }
  }
});

await section('signatures', async () => {
  for (const c of vectors.signatures) {
    const got = await V.verifySignature(c.key, b64(c.sig), b64(c.msg));
    check(got === c.python, `verifySignature ${c.kind}`, `got ${got}, Python ${c.python}`);
  }
  check(await V.verifySignature('AAAA', new Uint8Array(64), new Uint8Array()) === null, 'verifySignature of a non-key');
});

for (const s of sections) process.stdout.write(`${s}\n`);
for (const f of failures.slice(0, 200)) process.stdout.write(`FAIL ${f}\n`);
if (failures.length) {
  process.stdout.write(`${failures.length} of ${passed + failures.length} checks failed\n`);
  process.exit(1);
}
process.stdout.write(`all checks passed (${passed})\n`);
