// Formatting and small value helpers: times, durations, rates, numbers, canonical decimals, bytes.

import * as V from "./verify.js";
import {el} from "./dom.js";

export function fmtUTC(unix, {seconds = true} = {}) {
  const d = new Date(unix * 1000);
  if (Number.isNaN(d.getTime())) return "invalid time";
  const iso = d.toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, seconds ? 19 : 16)} UTC`;
}

export function fmtDay(unix) {
  return new Date(unix * 1000).toISOString().slice(0, 10);
}

function ago(unix, now = Date.now() / 1000) {
  const s = Math.round(now - unix);
  if (s < -5) return `${fmtDuration(-s)} in the future`;
  if (s < 45) return "just now";
  return `${fmtDuration(s)} ago`;
}

export function fmtDuration(s) {
  if (s < 90) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 90) return `${m} min`;
  const h = Math.round(s / 3600);
  if (h < 48) return `${h} h`;
  return `${Math.round(s / 86400)} days`;
}

export function timeEl(unix, {seconds = true, relative = false} = {}) {
  if (typeof unix !== "number" || !Number.isFinite(unix)) return el("span", {class: "muted"}, "unknown");
  const t = el("time", {datetime: new Date(unix * 1000).toISOString()}, fmtUTC(unix, {seconds}));
  if (!relative) return t;
  return el("span", {class: "when"}, t, el("span", {class: "ago"}, ` (${ago(unix)})`));
}

export function fmtRate(x) {
  if (x === 0) return "0";
  if (x >= 100) return String(Math.round(x));
  return new Intl.NumberFormat("en", {maximumSignificantDigits: 2}).format(x);
}

export function fmtInt(n) {
  return new Intl.NumberFormat("en").format(n);
}

export function isCanonicalDecimal(s) {
  return typeof s === "string" && /^(0|[1-9][0-9]{0,15})$/.test(s) && Number.isSafeInteger(Number(s));
}

export function toBytes(x) {
  if (x instanceof Uint8Array) return x;
  if (x instanceof ArrayBuffer) return new Uint8Array(x);
  if (ArrayBuffer.isView(x)) return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  if (typeof x === "string") return V.b64decode(x);
  throw new TypeError("not bytes");
}

export function b64(x) {
  if (typeof x === "string") return x;
  return V.b64encode(toBytes(x));
}

export function bytesEqual(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export const utf8 = new TextDecoder("utf-8", {fatal: false});
