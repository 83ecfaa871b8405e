// Fetching from the log: API and tile URLs (from config.json), API errors, cached tiles, and a
// bounded pool for proofs.

import * as V from "./verify.js";
import {state, tileCache} from "./state.js";

export class ApiError extends Error {
  constructor(status, code, message, url) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.url = url;
  }
}

export function apiURL(path) {
  return new URL(path, state.api).href;
}

export function tilesURL(path) {
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

export async function getJSON(url) {
  const resp = await request(url, {accept: "application/json"});
  const text = await resp.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(resp.status, "bad_response", `${url} did not answer JSON`, url);
  }
}

export async function getText(url) {
  return (await request(url)).text();
}

export async function getBytes(url) {
  return new Uint8Array(await (await request(url)).arrayBuffer());
}

export function fetchTile(path) {
  let p = tileCache.get(path);
  if (!p) {
    p = getBytes(tilesURL(path));
    p.catch(() => tileCache.delete(path));
    if (tileCache.size > 4000) tileCache.clear();
    tileCache.set(path, p);
  }
  return p;
}

export function tileReader(size) {
  return new V.TileReader(fetchTile, size);
}

/** Run `fn` over `items` with at most `n` in flight. */
export async function pool(items, n, fn) {
  let next = 0;
  const workers = Array.from({length: Math.min(n, items.length)}, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  });
  await Promise.all(workers);
}
