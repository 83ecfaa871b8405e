// Mutable state shared by the modules: what config.json, the trust policy and v1/log said,
// the current route's bookkeeping, and the session's tile cache. Only here, so every module
// sees the same objects.

export const state = {
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

/** Tiles, cached for the session (tile contents at a given path never change). */
export const tileCache = new Map();
