// Trust: config.json, the trust policy (pinned in the build, or from the server and pinned in
// this browser on first use), verifier keys, and the log's own description (v1/log).

import * as V from "./verify.js";
import {state} from "./state.js";
import {hashEl} from "./dom.js";
import {ApiError, apiURL, getJSON} from "./net.js";

const PIN_PREFIX = "tlog-explorer/pin/";

export function vkeyParts(vkey) {
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
export function vkeyEl(vkey, label = "verifier key") {
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

export function forgetPin(origin) {
  try { localStorage.removeItem(PIN_PREFIX + origin); } catch { /* nothing pinned */ }
}

export async function loadConfig() {
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

export async function loadTrust() {
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

export async function loadLogInfo() {
  try {
    state.logInfo = await getJSON(apiURL("v1/log"));
    state.logInfoError = null;
  } catch (e) {
    state.logInfo = null;
    state.logInfoError = e;
  }
}

export function origin() {
  return state.policy?.origin ?? state.logInfo?.origin ?? "";
}
