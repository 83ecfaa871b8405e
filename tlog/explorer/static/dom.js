// DOM helpers: elements built node by node (text via textContent, attributes one by one, never
// markup), hashes with copy buttons, links (from data only as parsed http(s) URLs), lists, cards.

const SVG_NS = "http://www.w3.org/2000/svg";

export function el(tag, attrs, ...kids) {
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

export function $(sel, root = document) {
  return root.querySelector(sel);
}

export function announce(text) {
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
export function hashEl(value, label = "hash", {full = false, id, display} = {}) {
  const s = String(value);
  return el("span", {class: full ? "hash hash-full" : "hash"},
    el("code", {title: s, id, "data-full": s}, full ? s : display ?? shortHash(s)),
    copyButton(s, label));
}

export function copyButton(text, label) {
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

export function link(href, text, attrs = {}) {
  return el("a", {href, ...attrs}, text);
}

/** An http(s) URL from data, or null: the only links made from API data. */
export function safeHttpUrl(s) {
  if (typeof s !== "string" || s.length > 4096 || !/^https?:\/\//i.test(s)) return null;
  try {
    const u = new URL(s);
    return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
  } catch {
    return null;
  }
}

export function externalLink(url, text) {
  return el("a", {href: url, rel: "noopener noreferrer nofollow", class: "ext"}, text ?? url);
}

export function dl(rows, attrs = {}) {
  const list = el("dl", {class: "kv", ...attrs});
  for (const row of rows) {
    if (!row) continue;
    const [term, value, ddAttrs] = row;
    list.append(el("dt", null, term), el("dd", ddAttrs ?? null, value));
  }
  return list;
}

export function section(title, attrs = {}, ...kids) {
  const hid = `h-${Math.random().toString(36).slice(2, 9)}`;
  return el("section", {class: "card", "aria-labelledby": hid, ...attrs},
    el("h2", {id: hid}, title), ...kids);
}

export function note(text, cls = "muted") {
  return el("p", {class: cls}, text);
}
