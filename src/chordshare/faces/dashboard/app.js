// The chordshare dashboard: the ring drawn live, a node's routing state, the files, upload,
// search and download. Plain JavaScript against the node's REST API; no build step.
// A node prints the page's address with its API token in the fragment (#token=...), which
// browsers never send to a server: the page keeps the token in sessionStorage (this tab only,
// gone when it closes), takes it out of the address bar and sends it on every call. Opened
// without it, the page asks for the token when the node answers 401.
"use strict";

const R = 200;               // radius of the ring in SVG units
const NODE_GAP = 24 / R;     // the least angle between two nodes drawn: a circle's width and a margin
const POLL_MS = 1500;        // how often the ring and the selected node are refreshed
const SVG = "http://www.w3.org/2000/svg";
const TOKEN_KEY = "chordshare.apiToken";

const state = { self: null, bits: 160, nodes: [], selected: null, scope: "network" };

const $ = (id) => document.getElementById(id);

// A name from the network as text a person can trust: a control, bidirectional or other
// invisible character (which could reorder or hide the rest) shown as \uXXXX, as the CLI does.
const INVISIBLE = /(?! )[\p{C}\p{Z}]/gu;
const shown = (name) => name.replace(INVISIBLE, (c) => {
  const code = c.codePointAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}`
    : code <= 0xffff ? `\\u${code.toString(16).padStart(4, "0")}`
    : `\\U${code.toString(16).padStart(8, "0")}`;
});

const storedToken = () => sessionStorage.getItem(TOKEN_KEY);
function takeTokenFromAddress() {
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  if (!token) return;
  sessionStorage.setItem(TOKEN_KEY, token);
  history.replaceState(null, "", location.pathname + location.search);
}
function authHeaders(token) {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

// Show the token form (once: the polls that keep answering 401 leave what is typed alone).
// `sent` is the token the refused call carried: a call still under way with the token just
// replaced says nothing about the new one.
function askForToken(sent) {
  if (sent !== storedToken()) return;
  const form = $("auth");
  $("auth-reason").textContent = storedToken()
    ? "That token is not this node's. Paste the one from the dashboard link the node printed."
    : "This node needs its API token: paste it from the dashboard link the node printed " +
      "(after #token=), or from the api-token file in its data directory.";
  if (form.hidden) {
    form.hidden = false;
    $("token-input").focus();
  }
}

// What the node refused for want of the token, done again once the token is given.
const refused = [];
function retryWithToken(action) {
  refused.push(action);
}
function retryRefused() {
  for (const action of refused.splice(0)) action();
}

function showTokenState() {
  $("forget-token").hidden = !storedToken();
}

class ApiFailure extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const token = storedToken();
  const headers = { ...(options.headers || {}), ...authHeaders(token) };
  const response = await fetch(path, { ...options, headers });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error.message; } catch (_) { /* not JSON */ }
    if (response.status === 401) askForToken(token);
    throw new ApiFailure(response.status, message);
  }
  return response;
}

function showUnreachable(err) {
  $("status").textContent = err.status === 401
    ? "this node needs its API token" : `cannot reach the node: ${err.message}`;
  $("status").className = "status bad";
}

// Ring ids have up to 160 bits, more than a JavaScript number holds exactly: read them as
// strings (BigInt where arithmetic is needed).
const BIG_NUMBER = /("(?:id|start|key)"\s*:\s*)(\d{16,})/g;
const getJson = async (path) => {
  const text = await (await api(path)).text();
  return JSON.parse(text.replace(BIG_NUMBER, '$1"$2"'));
};

function human(bytes) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes, unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

function shortId(id) {
  const text = String(id);
  return text.length > 8 ? `${text.slice(0, 6)}…` : text;
}

function angleOf(id) {
  const fraction = Number((BigInt(id) * 1000000n) / 2n ** BigInt(state.bits)) / 1000000;
  return fraction * 2 * Math.PI - Math.PI / 2;
}
function place(angle, radius = R) {
  return [radius * Math.cos(angle), radius * Math.sin(angle)];
}
// Where each node (sorted by id) is drawn: at its id's angle, pushed clockwise off the one
// before it where ids lie closer than a node's circle, so every node can be seen and
// clicked. The pushing starts after the widest gap, where there is most room.
function spread(nodes) {
  const n = nodes.length;
  const natural = nodes.map((node) => angleOf(node.id));
  const gap = Math.min(NODE_GAP, (2 * Math.PI) / Math.max(n, 1));
  let start = 0, widest = -1;
  natural.forEach((a, i) => {
    const before = i === 0 ? natural[n - 1] - 2 * Math.PI : natural[i - 1];
    if (a - before > widest) { widest = a - before; start = i; }
  });
  const angles = new Map();
  let previous = -Infinity;
  for (let k = 0; k < n; k++) {
    const i = (start + k) % n;
    const a = natural[i] + (i < start ? 2 * Math.PI : 0);
    previous = Math.max(a, previous + gap);
    angles.set(nodes[i].address, previous);
  }
  return angles;
}

function el(name, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

let drawn = "";  // what the ring shows now: redrawing the same would only eat clicks

function drawRing(fingers) {
  const svg = $("ring");
  const showing = JSON.stringify([state.nodes, state.self, state.selected, fingers]);
  if (showing === drawn) return;
  drawn = showing;
  svg.replaceChildren();
  el("circle", { class: "ring-circle", r: R }, svg);
  const nodes = state.nodes;
  const angles = spread(nodes);
  const at = (node, radius = R) => place(angles.get(node.address) ?? angleOf(node.id), radius);
  // Successor links: a gentle curve inside the ring from each node to the next.
  nodes.forEach((node, i) => {
    const next = nodes[(i + 1) % nodes.length];
    if (nodes.length < 2) return;
    const [x1, y1] = at(node), [x2, y2] = at(next);
    el("path", { class: "link", d: `M${x1},${y1} Q${(x1 + x2) * 0.35},${(y1 + y2) * 0.35} ${x2},${y2}` }, svg);
  });
  // The selected node's fingers as chords.
  const chosen = nodes.find((n) => n.address === state.selected);
  if (chosen && fingers) {
    const [x1, y1] = at(chosen);
    for (const target of fingers) {
      if (target.address === chosen.address) continue;
      const [x2, y2] = at(target);
      el("line", { class: "chord", x1, y1, x2, y2 }, svg);
    }
  }
  for (const node of nodes) {
    const [x, y] = at(node);
    const classes = ["node"];
    if (node.address === state.self) classes.push("self");
    if (node.address === state.selected) classes.push("selected");
    const g = el("g", { class: classes.join(" "), "data-address": node.address }, svg);
    el("circle", { cx: x, cy: y, r: 9 }, g);
    const [lx, ly] = at(node, R + 30);
    const anchor = lx > 5 ? "start" : lx < -5 ? "end" : "middle";
    const label = el("text", { x: lx, y: ly, "text-anchor": anchor }, g);
    label.textContent = shortId(node.id);
    const addr = el("text", { x: lx, y: ly + 12, "text-anchor": anchor, class: "addr" }, g);
    addr.textContent = node.address;
  }
}

function selectNode(address) {
  state.selected = address;
  refreshNode();
  if (state.scope === "node") refreshFiles();
}

async function loadSelf() {
  const me = await getJson("/api/v1/node");
  state.self = me.address;
  state.selfId = me.id;
  state.bits = me.bits;
  if (!state.selected) state.selected = me.address;
}

async function refreshRing() {
  try {
    if (!state.self) await loadSelf();
    const ring = await getJson("/api/v1/ring");
    state.nodes = ring.nodes.slice().sort((a, b) => (BigInt(a.id) < BigInt(b.id) ? -1 : 1));
    $("ring-size").textContent = `${state.nodes.length} node(s), ${state.bits}-bit ids`;
    if (!state.nodes.some((n) => n.address === state.selected)) state.selected = state.self;
    $("status").textContent = `node ${shortId(state.selfId)} at ${state.self}: on a ring of ${state.nodes.length}`;
    $("status").className = "status ok";
    await refreshNode();
  } catch (err) {
    showUnreachable(err);
  }
}

async function refreshNode() {
  const asked = state.selected;
  let info = null;
  try {
    const query = asked && asked !== state.self ? `?address=${encodeURIComponent(asked)}` : "";
    info = await getJson(`/api/v1/node${query}`);
  } catch (err) {
    if (asked !== state.selected) return;
    $("node-title").textContent = `(${err.message})`;
  }
  // Another node was picked while this answer travelled: the newer one draws it.
  if (asked !== state.selected) return;
  const fingers = [];
  if (info) {
    $("node-title").textContent = info.address === state.self ? "(serving this page)" : "";
    $("node-id").textContent = info.id;
    $("node-address").textContent = info.address;
    $("node-pred").textContent = info.predecessor ? `${shortId(info.predecessor.id)} ${info.predecessor.address}` : "–";
    $("node-succ").replaceChildren(...info.successors.map((s) => {
      const li = document.createElement("li");
      li.textContent = `${shortId(s.id)} ${s.address}`;
      return li;
    }));
    const rows = [];
    let previous = null;
    info.fingers.forEach((f, i) => {
      if (!f.node || (previous && previous.address === f.node.address)) return;
      previous = f.node;
      fingers.push(f.node);
      const tr = document.createElement("tr");
      tr.innerHTML = `<td>${i}</td><td>${shortId(f.node.id)}</td><td class="mono"></td>`;
      tr.lastChild.textContent = f.node.address;
      rows.push(tr);
    });
    $("node-fingers").replaceChildren(...rows);
  }
  drawRing(fingers);
}

// The link's href is for copying; a click downloads through fetch, which can send the token.
function downloadLink(name) {
  const a = document.createElement("a");
  a.href = `/api/v1/files/${encodeURIComponent(name)}`;
  a.textContent = "download";
  a.className = "download";
  a.dataset.name = name;
  a.addEventListener("click", (event) => { event.preventDefault(); download(name); });
  return a;
}

// Bring a result into view: it lands under the files, which may be scrolled far off.
function showHere(panel) {
  panel.scrollIntoView({ block: "nearest" });
}

async function download(name, path = `/api/v1/files/${encodeURIComponent(name)}`) {
  const panel = $("transfer");
  panel.textContent = `getting ${shown(name)}…`;
  showHere(panel);
  try {
    const response = await api(path);
    const blob = await response.blob();
    const sources = (response.headers.get("X-Chordshare-Sources") || "")
      .split(",").filter(Boolean).map((s) => s.split("=")).map(([a, b]) => [a, Number(b)]);
    const total = sources.reduce((sum, [, b]) => sum + b, 0) || 1;
    panel.replaceChildren();
    const title = document.createElement("div");
    title.textContent = `got ${shown(name)} (${human(blob.size)}, sha256 ${response.headers.get("X-Content-SHA256").slice(0, 16)}…)` +
      (sources.length ? ", chunks served by:" : " from this node's cache");
    panel.appendChild(title);
    if (sources.length) {
      const bar = document.createElement("div");
      bar.className = "bar";
      for (const [address, bytes] of sources) {
        const span = document.createElement("span");
        span.style.width = `${(100 * bytes) / total}%`;
        span.title = `${address}: ${human(bytes)}`;
        bar.appendChild(span);
      }
      panel.appendChild(bar);
      const list = document.createElement("div");
      list.className = "small mono sources";
      list.textContent = sources.filter(([, b]) => b > 0).map(([a, b]) => `${a} ${human(b)}`).join("   ");
      panel.appendChild(list);
    }
    const save = document.createElement("a");
    save.href = URL.createObjectURL(blob);
    save.download = name.split("/").pop();  // a name's last part: never a path
    document.body.appendChild(save);
    save.click();
    save.remove();
    showHere(panel);
  } catch (err) {
    if (err.status === 401) {
      retryWithToken(() => download(name, path));
      panel.textContent = `${shown(name)}: waiting for the token`;
      return;
    }
    panel.innerHTML = "";
    const p = document.createElement("span");
    p.className = "error";
    p.textContent = `${shown(name)}: ${err.message}`;
    panel.appendChild(p);
  }
}

// A file row's button: its class is also its label; `act` runs on a click.
function rowButton(kind, name, act, title = "") {
  const button = document.createElement("button");
  button.type = "button";
  button.className = kind;
  button.textContent = kind;
  if (title) button.title = title;
  button.dataset.name = name;
  button.addEventListener("click", act);
  return button;
}

function removeButton(name, folder = false) {
  return rowButton("remove", name, () => remove(name, false, folder));
}

async function remove(name, confirmed = false, folder = false) {
  const what = folder ? `the folder ${shown(name)}/ and every file in it` : shown(name);
  if (!confirmed && !confirm(`Remove ${what} from the whole network?`)) return;
  const panel = $("transfer");
  const kind = folder ? "folders" : "files";
  try {
    await api(`/api/v1/${kind}/${encodeURIComponent(name)}`, { method: "DELETE" });
    panel.textContent = `removed ${shown(name)}`;
    showHere(panel);
  } catch (err) {
    if (err.status === 401) {
      retryWithToken(() => remove(name, true, folder));
      panel.textContent = `${shown(name)}: waiting for the token`;
      return;
    }
    panel.replaceChildren();
    const p = document.createElement("span");
    p.className = "error";
    p.textContent = `${shown(name)}: ${err.message}`;
    panel.appendChild(p);
  }
  refreshFiles();
}

async function refreshFiles() {
  try {
    const query = state.scope === "network" ? "?scope=network"
      : state.selected && state.selected !== state.self
        ? `?address=${encodeURIComponent(state.selected)}` : "";
    const listing = await getJson(`/api/v1/files${query}`);
    const rows = listing.files.map((f) => {
      const tr = document.createElement("tr");
      tr.dataset.name = f.name;
      const holders = f.holders ? `${f.holders.length}` : f.shared ? "shared here" : "stored here";
      for (const text of [shown(f.name), human(f.size), holders]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      }
      if (f.conflict_of) {
        // A version written apart from the one that kept the name, kept under this one.
        const mark = document.createElement("span");
        mark.className = "conflict";
        mark.textContent = `conflict of ${shown(f.conflict_of)}`;
        mark.title = "written apart from the file that kept that name; both are kept";
        tr.firstChild.append(" ", mark);
      }
      // Only this key (or an admin key) may replace or remove the file.
      const key = document.createElement("td");
      key.className = "publisher";
      key.textContent = f.publisher || "unsigned";
      key.title = f.publisher
        ? `published by ${f.publisher_key}: only that key may replace or remove it`
        : "stored before signatures: anyone may replace it";
      tr.appendChild(key);
      const td = document.createElement("td");
      if (f.kind === "folder") {
        tr.classList.add("folder");
        tr.firstChild.textContent = `${shown(f.name)}/`;
        const mark = document.createElement("span");
        mark.className = "folder-mark";
        mark.textContent = f.files === null ? "folder" : `folder, ${f.files} file(s)`;
        tr.firstChild.append(" ", mark);
        td.append(browseButton(f.name), zipLink(f.name), linkButton(f.name));
        td.append(removeButton(f.name, true));
      } else {
        td.appendChild(downloadLink(f.name));
        if (!f.shared) td.appendChild(linkButton(f.name));
        if (!f.shared) td.appendChild(removeButton(f.name));
      }
      tr.appendChild(td);
      return tr;
    });
    $("files").replaceChildren(...rows);
  } catch (err) {
    $("files").innerHTML = `<tr><td colspan="5" class="error"></td></tr>`;
    $("files").querySelector("td").textContent = err.message;
  }
}

function upload(file) {
  const row = document.createElement("div");
  row.className = "upload";
  const label = document.createElement("span");
  label.textContent = file.name;
  const bar = document.createElement("progress");
  bar.max = file.size || 1;
  bar.value = 0;
  row.append(label, bar);
  $("uploads").prepend(row);
  // The file is the body (the browser sends its Content-Length): the node streams it on
  // to the owner of its name as it arrives, and stores nothing of it on the way.
  const xhr = new XMLHttpRequest();
  xhr.open("PUT", `/api/v1/files/${encodeURIComponent(file.name)}`);
  const token = storedToken();
  for (const [name, value] of Object.entries(authHeaders(token))) xhr.setRequestHeader(name, value);
  xhr.upload.onprogress = (event) => { bar.value = event.loaded; };
  xhr.onload = () => {
    bar.remove();
    let answer = {};
    try { answer = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
    if (xhr.status === 200 || xhr.status === 201) {
      row.classList.add("done");
      label.textContent = `${file.name}: ${answer.unchanged ? "already stored" : "stored"} (${human(answer.size)})`;
      refreshFiles();
    } else if (xhr.status === 401) {
      row.remove();  // it goes again, with a row of its own, once the token is given
      retryWithToken(() => upload(file));
      askForToken(token);
    } else {
      row.classList.add("failed");
      label.textContent = `${file.name}: ${answer.error ? answer.error.message : xhr.statusText}`;
    }
  };
  xhr.onerror = () => { row.classList.add("failed"); label.textContent = `${file.name}: upload failed`; };
  xhr.send(file);
}

async function search(text) {
  const out = $("search-results");
  out.replaceChildren();
  if (!text.trim()) return;
  try {
    const found = await getJson(`/api/v1/search?q=${encodeURIComponent(text)}`);
    if (!found.files.length) {
      out.textContent = `nothing matches “${text}”`;
      return;
    }
    for (const f of found.files) {
      const div = document.createElement("div");
      div.className = "result";
      div.dataset.name = f.name;
      if (f.kind === "folder") {
        div.textContent = `${shown(f.name)}/ (folder) `;
        div.append(browseButton(f.name), zipLink(f.name));
      } else {
        div.textContent = `${shown(f.name)} (${human(f.size)}) `;
        div.appendChild(downloadLink(f.name));
      }
      out.appendChild(div);
    }
  } catch (err) {
    out.innerHTML = `<span class="error"></span>`;
    out.firstChild.textContent = err.message;
  }
}

function wire() {
  // One listener for every node, on the SVG that outlives redraws; pointerdown, so a
  // redraw between press and release cannot swallow the click.
  $("ring").addEventListener("pointerdown", (event) => {
    const node = event.target.closest("g.node");
    if (node) selectNode(node.dataset.address);
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    for (const file of e.dataTransfer.files) upload(file);
  });
  $("folder-input").addEventListener("change", (e) => {
    uploadFolder([...e.target.files]);
    e.target.value = "";
  });
  $("file-input").addEventListener("change", (e) => {
    for (const file of e.target.files) upload(file);
    e.target.value = "";
  });
  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); search($("search").value); });
  $("link-form").addEventListener("submit", (e) => {
    e.preventDefault();
    openLink($("link-input").value.trim());
  });
  $("auth").addEventListener("submit", (e) => {
    e.preventDefault();
    const token = $("token-input").value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    $("token-input").value = "";
    $("auth").hidden = true;
    showTokenState();
    refreshAll();
    retryRefused();
  });
  $("forget-token").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showTokenState();
    refreshAll();  // a node that needs the token answers 401, and the form comes back
  });
  for (const button of document.querySelectorAll(".tabs button")) {
    button.addEventListener("click", () => {
      document.querySelectorAll(".tabs button").forEach((b) => b.classList.remove("active"));
      button.classList.add("active");
      state.scope = button.dataset.scope;
      refreshFiles();
    });
  }
}

async function refreshAll() {
  await refreshRing();
  await refreshFiles();
}

async function start() {
  takeTokenFromAddress();
  wire();
  showTokenState();
  await refreshAll();
  // While the token form is up, polls would only collect more 401s: they wait for it.
  const unlocked = () => $("auth").hidden;
  setInterval(() => unlocked() && refreshRing(), POLL_MS);
  setInterval(() => unlocked() && refreshFiles(), POLL_MS * 2);
}

start();
