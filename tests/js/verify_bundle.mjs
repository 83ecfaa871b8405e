// Verify a Sigstore bundle with sigstore-js's own verifier (@sigstore/verify), against a local
// TrustedRoot instead of TUF, with the default thresholds (tlog 1, timestamp 1), the way
// sigstore.verify() does it for a public-key signer (sigstore/dist/sigstore.js:createVerifier).
//
//   node verify_bundle.mjs --trusted-root ROOT.json --bundle BUNDLE.json [--artifact FILE] --key PEMFILE
//
// Prints exactly one JSON line: {"ok": true} or {"ok": false, "error": "<Class>[/<code>]: <message>"}
// and exits 0 for both. Exits 2 only when the harness itself cannot run (bad arguments, a missing
// file, the npm packages not installed: `npm ci --ignore-scripts --prefix tests/js`).
// A DSSE bundle takes no --artifact; a message-signature bundle needs one.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

function die(message) {
  process.stderr.write(`verify_bundle.mjs: ${message}\n`);
  process.exit(2);
}

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      'trusted-root': { type: 'string' },
      bundle: { type: 'string' },
      artifact: { type: 'string' },
      key: { type: 'string' },
    },
    strict: true,
    allowPositionals: false,
  }));
} catch (err) {
  die(err.message);
}
for (const name of ['trusted-root', 'bundle', 'key']) {
  if (args[name] === undefined) die(`--${name} is required`);
}

function read(path, encoding) {
  try {
    return readFileSync(path, encoding);
  } catch (err) {
    return die(`cannot read ${path}: ${err.message}`);
  }
}

const rootText = read(args['trusted-root'], 'utf8');
const bundleText = read(args.bundle, 'utf8');
const keyPem = read(args.key, 'utf8');
const artifact = args.artifact === undefined ? undefined : read(args.artifact);

// The packages are CommonJS; resolve them from this directory's node_modules.
const require = createRequire(import.meta.url);
let verify, bundleLib, specs, core;
try {
  verify = require('@sigstore/verify');
  bundleLib = require('@sigstore/bundle');
  specs = require('@sigstore/protobuf-specs');
  core = require('@sigstore/core');
} catch (err) {
  die(`${err.message} (run: npm ci --ignore-scripts --no-audit --no-fund --prefix tests/js)`);
}

// sigstore/dist/config.js:createKeyFinder over a keySelector that returns our PEM for any hint:
// with the public-key API the verifier supplies the key; the bundle's hint is unauthenticated.
const keySelector = () => keyPem;
function keyFinder(hint) {
  const key = keySelector(hint);
  if (!key) {
    throw new verify.VerificationError({ code: 'PUBLIC_KEY_ERROR', message: `key not found: ${hint}` });
  }
  return { publicKey: core.crypto.createPublicKey(key), validFor: () => true };
}

function describe(err) {
  if (!(err instanceof Error)) return `${typeof err}: ${String(err)}`;
  const cls = err.constructor?.name || err.name || 'Error';
  let out = err.code ? `${cls}/${err.code}: ${err.message}` : `${cls}: ${err.message}`;
  if (Array.isArray(err.fields) && err.fields.length) out += ` [fields: ${err.fields.join(', ')}]`;
  if (err.cause !== undefined && err.cause !== null) out += ` (cause: ${describe(err.cause)})`;
  return out;
}

let line;
try {
  const trustedRoot = specs.TrustedRoot.fromJSON(JSON.parse(rootText));
  const trustMaterial = verify.toTrustMaterial(trustedRoot, keyFinder);
  const bundle = bundleLib.bundleFromJSON(JSON.parse(bundleText));
  const entity = verify.toSignedEntity(bundle, artifact);
  // No options: the Verifier's defaults are tlogThreshold 1, ctlogThreshold 1 (unused without
  // certificates), timestampThreshold 1.
  new verify.Verifier(trustMaterial).verify(entity, {});
  line = '{"ok": true}';
} catch (err) {
  line = `{"ok": false, "error": ${JSON.stringify(describe(err))}}`;
}
process.stdout.write(line + '\n');
