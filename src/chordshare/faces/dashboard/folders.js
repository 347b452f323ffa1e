// Folders in the dashboard: a folder's files browsed, the folder downloaded as a zip the
// node streams, and a folder uploaded from the directory picker. Uses what app.js defines.
"use strict";

// A folder's files, listed under the files: each a plain file of its own name.
function browseButton(name) {
  return rowButton("browse", name, () => browse(name));
}

async function browse(name) {
  const panel = $("transfer");
  try {
    const folder = await getJson(`/api/v1/folders/${encodeURIComponent(name)}`);
    panel.replaceChildren();
    const title = document.createElement("div");
    title.textContent = `${shown(name)}/: ${folder.files} file(s), ${human(folder.size)}`;
    const list = document.createElement("ul");
    list.className = "folder-entries small";
    for (const entry of folder.entries) {
      const li = document.createElement("li");
      li.dataset.path = entry.path;
      if (entry.type === "dir") {
        li.textContent = `${shown(entry.path)}/`;
      } else {
        li.textContent = `${shown(entry.path)} (${human(entry.size)}) `;
        li.appendChild(downloadLink(`${name}/${entry.path}`));
      }
      list.appendChild(li);
    }
    panel.append(title, list);
    showHere(panel);
  } catch (err) {
    if (err.status === 401) { retryWithToken(() => browse(name)); return; }
    panel.replaceChildren();
    const p = document.createElement("span");
    p.className = "error";
    p.textContent = `${shown(name)}: ${err.message}`;
    panel.appendChild(p);
  }
}

// The folder as a zip, which the node streams while it fetches the folder's files.
function zipLink(name) {
  const a = document.createElement("a");
  a.href = `/api/v1/folders/${encodeURIComponent(name)}?format=zip`;
  a.textContent = "download zip";
  a.className = "download-zip";
  a.dataset.name = name;
  a.addEventListener("click", (event) => {
    event.preventDefault();
    saveZip(name, a.getAttribute("href"));
  });
  return a;
}

// Folder `name` as a zip from `path` (its own, or a link's), saved as LAST-PART.zip.
async function saveZip(name, path) {
  const panel = $("transfer");
  panel.textContent = `getting ${shown(name)}/ as a zip…`;
  showHere(panel);
  try {
    const blob = await (await api(path)).blob();
    const save = document.createElement("a");
    save.href = URL.createObjectURL(blob);
    save.download = `${name.split("/").pop()}.zip`;
    document.body.appendChild(save);
    save.click();
    save.remove();
    panel.textContent = `got ${shown(name)}/ as a zip (${human(blob.size)})`;
  } catch (err) {
    if (err.status === 401) { retryWithToken(() => saveZip(name, path)); return; }
    panel.textContent = `${shown(name)}: ${err.message}`;
  }
}

// A folder chosen with the directory picker: each file a part named by its path inside it.
function uploadFolder(files) {
  if (!files.length) return;
  const top = files[0].webkitRelativePath.split("/")[0];
  const row = document.createElement("div");
  row.className = "upload";
  const label = document.createElement("span");
  label.textContent = `${top}/ (${files.length} file(s))`;
  row.append(label);
  $("uploads").prepend(row);
  const form = new FormData();
  for (const file of files) {
    form.append("file", file, file.webkitRelativePath.split("/").slice(1).join("/"));
  }
  api(`/api/v1/folders/${encodeURIComponent(top)}`, { method: "POST", body: form })
    .then(async (response) => {
      const answer = await response.json();
      row.classList.add("done");
      label.textContent = `${top}/: ${answer.unchanged ? "already stored" : "stored"} ` +
        `(${answer.files} file(s), ${human(answer.size)})`;
      refreshFiles();
    })
    .catch((err) => {
      if (err.status === 401) { row.remove(); retryWithToken(() => uploadFolder(files)); return; }
      row.classList.add("failed");
      label.textContent = `${top}/: ${err.message}`;
    });
}
