// Links in the dashboard: a file's or a folder's link shown to copy, and a link opened
// (a folder's as a zip of the version it names). Uses what app.js and folders.js define.
"use strict";

// The name a folder's manifest is stored under, which a folder's link carries.
const FOLDER_SUFFIX = ".chordshare-folder";

function linkButton(name) {
  return rowButton("link", name, () => showLink(name), "copy a link to these exact bytes, to send");
}

async function showLink(name) {
  const panel = $("transfer");
  try {
    const response = await api(`/api/v1/link?name=${encodeURIComponent(name)}`);
    const info = await response.json();
    let copied = false;
    try {
      await navigator.clipboard.writeText(info.link);
      copied = true;
    } catch (_) { /* no clipboard here: the line is selected to copy by hand */ }
    const note = document.createElement("div");
    const folder = info.kind === "folder";
    note.textContent = `link to ${shown(name)}${folder ? "/" : ""}${copied ? " copied" : ""}: ` +
      "anyone who reaches this network gets " +
      (folder ? "this very version of the folder" : "these exact bytes") + " with it" +
      (info.needs_cluster_token ? " (this network has a cluster token: they need it too)" : "");
    const line = document.createElement("input");
    line.className = "link-line mono";
    line.readOnly = true;
    line.value = info.link;
    panel.replaceChildren(note, line);
    line.select();
    showHere(panel);
  } catch (err) {
    const p = document.createElement("span");
    p.className = "error";
    p.textContent = `${shown(name)}: ${err.message}`;
    panel.replaceChildren(p);
  }
}

// The name a link carries (what its bytes are saved as), read as the node will.
function linkName(link) {
  const found = /^chordshare:\/\/[0-9a-f]{64}\/([^?#]+)/i.exec(link.trim());
  if (!found) return "link";
  try { return decodeURIComponent(found[1]); } catch (_) { return "link"; }
}

// A link pasted in the open-link form: a file's bytes, or a folder's version as a zip.
function openLink(link) {
  if (!link) return;
  const name = linkName(link);
  const path = `/api/v1/link/file?link=${encodeURIComponent(link)}`;
  if (name.endsWith(FOLDER_SUFFIX) && name.length > FOLDER_SUFFIX.length) {
    saveZip(name.slice(0, -FOLDER_SUFFIX.length), path);
  } else {
    download(name, path);
  }
}
