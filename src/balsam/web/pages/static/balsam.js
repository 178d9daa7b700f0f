// Balsam's portal: small enhancements; every page works without them (a link to a
// confirmation page instead of a dialog, a reload instead of live state).
"use strict";

// A form with data-confirm keeps its submit button disabled until the text typed
// in its "confirm" field is exactly that value (the server checks it again).
function armConfirmations() {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    const input = form.querySelector("input[name=confirm]");
    const button = form.querySelector("button[type=submit]");
    if (!input || !button) continue;
    const update = () => { button.disabled = input.value.trim() !== form.dataset.confirm; };
    input.addEventListener("input", update);
    update();
  }
}

// A button with data-copy="<id>" copies that element's value or text.
function armCopyButtons() {
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copy);
      if (!source) return;
      const text = "value" in source ? source.value : source.textContent;
      try {
        await navigator.clipboard.writeText(text);
        button.dataset.copied = "true";
      } catch {
        if (source.select) source.select();
      }
    });
  }
}

// Open a modal dialog (keyboard focus goes into it; Escape closes it) and give the
// focus back to what opened it when it closes.
function openDialog(dialog, opener) {
  dialog.showModal();
  // A field to fill in first; else the safe choice (autofocus: Cancel); else a button.
  const first = ["input:not([type=hidden])", "[autofocus]", "button"]
    .map((selector) => dialog.querySelector(selector)).find(Boolean);
  if (first) first.focus();
  dialog.addEventListener("close", () => { if (opener) opener.focus(); }, {once: true});
}

// A link with data-dialog="<id>" opens that <dialog> instead of its confirmation
// page; a button with data-close in a dialog closes it.
function armDialogs() {
  for (const link of document.querySelectorAll("a[data-dialog]")) {
    const dialog = document.getElementById(link.dataset.dialog);
    if (!dialog || !dialog.showModal) continue;
    link.addEventListener("click", (event) => {
      event.preventDefault();
      const menu = link.closest("details");
      openDialog(dialog, menu ? menu.querySelector("summary") : link);
      if (menu) menu.open = false;
    });
  }
  for (const button of document.querySelectorAll("dialog [data-close]")) {
    button.addEventListener("click", () => button.closest("dialog").close());
  }
}

// A form with data-ask="<question>" asks it in the page's #ask dialog first.
function armQuestions() {
  const dialog = document.getElementById("ask");
  if (!dialog || !dialog.showModal) return;
  let pending = null;
  dialog.querySelector("[data-ok]").addEventListener("click", () => {
    const form = pending;
    pending = null;
    dialog.close();
    if (form) form.submit();  // submit() skips the listener below
  });
  for (const form of document.querySelectorAll("form[data-ask]")) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      pending = form;
      document.getElementById("ask-text").textContent = form.dataset.ask;
      openDialog(dialog, form.querySelector("button[type=submit]"));
    });
  }
}

// A workspace's reason in the page's language: word for word (``reasons``), or by one
// of ``patterns``, [source, template] pairs for reasons with a value in them
// ("Stopped by anna"); any other as it is. As balsam.web.pages.states.reason does.
function translateReason(reasons, patterns, reason) {
  if (reasons[reason]) return reasons[reason];
  for (const [source, template] of patterns) {
    const found = reason.match(new RegExp(`^(?:${source})$`));
    if (found) return template.replace(/%\((\w+)\)s/g, (_, name) => found.groups[name] ?? "");
  }
  return reason;
}

// A table with data-live (Mina sidor) keeps its workspaces' states current: the
// rows' state, reason and actions follow GET /api/v1/workspaces while the page is
// shown, without a reload.
function armLiveStates() {
  const table = document.querySelector("table[data-live]");
  if (!table) return;
  const labels = JSON.parse(table.dataset.labels || "{}");
  const reasons = JSON.parse(table.dataset.reasons || "{}");
  const patterns = JSON.parse(table.dataset.patterns || "[]");
  const update = (ws) => {
    const row = table.querySelector(`tr[data-workspace="${CSS.escape(ws.id)}"]`);
    if (!row || (row.dataset.state === ws.state && row.dataset.reason === ws.stateReason)) return;
    row.dataset.state = ws.state;
    row.dataset.reason = ws.stateReason;
    row.querySelector("[data-part=state]").textContent = labels[ws.state] || ws.state;
    const reason = ws.stateReason || "";
    row.querySelector("[data-part=reason]").textContent =
      translateReason(reasons, patterns, reason);
    const show = {
      open: ws.state === "running",
      stop: ws.state === "pending" || ws.state === "running",
      start: (ws.state === "stopped" || ws.state === "failed") && !ws.locked,
    };
    for (const [part, shown] of Object.entries(show)) {
      const element = row.querySelector(`[data-part=${part}]`);
      if (element) element.hidden = !shown;
    }
  };
  const poll = async () => {
    if (document.visibilityState === "visible") {
      try {
        const response = await fetch("/api/v1/workspaces?all=false", {credentials: "same-origin"});
        if (response.ok) (await response.json()).forEach(update);
      } catch {
        // offline for a moment: the next round tries again
      }
    }
    setTimeout(poll, table.querySelector("tr[data-state=pending]") ? 2000 : 10000);
  };
  setTimeout(poll, 2000);
}

// Send one file to the project's data as a resumable upload (docs/data.md): start it
// (or find the one begun for this file before: its id is kept in localStorage), send
// the parts the server lacks, PARTS_AT_ONCE at a time, each tried again after a dropped
// connection, then complete it. Every call carries the session's CSRF token (the API
// takes the session cookie only with it). ``dest``: {projectId, path, csrf,
// expiresInDays (tmp/ only; optional)}; ``onProgress(sent, total)`` as bytes leave.
// Resolves with the API's answer ({path, versionId, size, sha256}); rejects with an
// Error whose message is the API's detail. Picking the same file again after a
// failure continues where it stopped.
const PARTS_AT_ONCE = 3;
const PART_TRIES = 5;

function apiCall(method, url, csrf, body, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    if (method !== "GET") xhr.setRequestHeader("X-CSRF-Token", csrf);
    if (body && !(body instanceof Blob)) xhr.setRequestHeader("Content-Type", "application/json");
    xhr.responseType = "json";
    if (onProgress) xhr.upload.addEventListener("progress", (e) => onProgress(e.loaded));
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(xhr.response);
        return;
      }
      const detail = xhr.response && (xhr.response.detail || xhr.response.title);
      const error = new Error(detail || `HTTP ${xhr.status}`);
      error.status = xhr.status;
      reject(error);
    });
    xhr.addEventListener("error", () => reject(new Error(xhr.statusText || "network error")));
    xhr.addEventListener("abort", () => reject(new Error("aborted")));
    xhr.send(body && !(body instanceof Blob) ? JSON.stringify(body) : body || null);
  });
}

async function uploadFile(file, dest, onProgress) {
  const project = `/api/v1/projects/${encodeURIComponent(dest.projectId)}`;
  const remembered = `balsam-upload:${dest.projectId}:${dest.path}:${file.size}:${file.lastModified}`;
  let upload = null;
  const earlier = window.localStorage.getItem(remembered);
  if (earlier) {
    try {
      upload = await apiCall("GET", `${project}/uploads/${encodeURIComponent(earlier)}`);
    } catch (error) {
      upload = null; // finished, aborted or swept: start afresh
    }
  }
  if (!upload || upload.size !== file.size || upload.path !== dest.path) {
    const start = { path: dest.path, size: file.size, contentType: file.type || null };
    if (dest.expiresInDays) start.expiresInDays = Number(dest.expiresInDays);
    upload = await apiCall("POST", `${project}/data/uploads`, dest.csrf, start);
    window.localStorage.setItem(remembered, upload.id);
  }
  const base = `${project}/uploads/${encodeURIComponent(upload.id)}`;
  const held = new Set(upload.parts.map((part) => part.number));
  const sending = new Map(); // part number -> bytes of it sent so far
  let done = upload.parts.reduce((sum, part) => sum + part.size, 0);
  const report = () => {
    let inFlight = 0;
    for (const sent of sending.values()) inFlight += sent;
    if (onProgress) onProgress(Math.min(done + inFlight, file.size), file.size);
  };
  report();
  const waiting = [];
  for (let n = 1; n <= upload.partsTotal; n += 1) if (!held.has(n)) waiting.push(n);
  const sendPart = async (number) => {
    const first = (number - 1) * upload.partSize;
    const blob = file.slice(first, Math.min(first + upload.partSize, file.size));
    for (let attempt = 1; ; attempt += 1) {
      try {
        await apiCall("PUT", `${base}/parts/${number}`, dest.csrf, blob, (sent) => {
          sending.set(number, sent);
          report();
        });
        sending.delete(number);
        done += blob.size;
        report();
        return;
      } catch (error) {
        sending.delete(number);
        const lasting = error.status && error.status < 500 && error.status !== 429;
        if (lasting || attempt >= PART_TRIES) throw error;
        await new Promise((wake) => window.setTimeout(wake, 1000 * 2 ** attempt));
      }
    }
  };
  const worker = async () => {
    while (waiting.length) await sendPart(waiting.shift());
  };
  await Promise.all(Array.from({ length: PARTS_AT_ONCE }, worker));
  const written = await apiCall("POST", `${base}/complete`, dest.csrf);
  window.localStorage.removeItem(remembered);
  if (onProgress) onProgress(file.size, file.size);
  return written;
}

// The Data tab's upload form (data-upload): each chosen file goes with uploadFile, one
// after the other, a progress bar each; when all have arrived, the folder is shown
// again. Without JavaScript the form stays hidden (the page says what to use instead).
function armUploads() {
  const form = document.querySelector("form[data-upload]");
  if (!form) return;
  form.hidden = false;
  const list = form.querySelector(".uploads");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = form.querySelector("input[type=file]");
    const button = form.querySelector("button[type=submit]");
    const expires = form.querySelector("input[name=expires]");
    button.disabled = true;
    list.replaceChildren();
    let failed = false;
    for (const file of input.files) {
      const item = document.createElement("li");
      const name = document.createElement("span");
      name.textContent = file.name;
      const bar = document.createElement("progress");
      bar.max = file.size || 1;
      bar.value = 0;
      bar.setAttribute("aria-label", file.name);
      const state = document.createElement("span");
      state.className = "muted";
      item.append(name, bar, state);
      list.append(item);
      const dest = {
        projectId: form.dataset.project,
        path: form.dataset.folder + file.name,
        csrf: form.elements.csrf.value,
        expiresInDays: expires ? expires.value : "",
      };
      try {
        await uploadFile(file, dest, (sent, total) => {
          bar.value = file.size ? sent : 1;
          // Every byte sent: the server still puts the last part in place.
          state.textContent = sent >= total ? list.dataset.finishing
            : `${Math.floor((100 * sent) / (total || 1))} %`;
        });
        state.textContent = list.dataset.done;
      } catch (error) {
        failed = true;
        state.className = "error";
        state.setAttribute("role", "alert");
        // The API answers in English: the page's own words for what it can name.
        const known = { 507: list.dataset.quota, 429: list.dataset.busy };
        state.textContent = `${list.dataset.failed} ${known[error.status] || error.message}`;
      }
    }
    button.disabled = false;
    if (!failed) window.location.assign(form.dataset.next);
  });
}

// A form with data-autosubmit goes at once (the hand-over of the session to the
// workspaces' host); without JavaScript the user presses its button.
function submitAutomatically() {
  const form = document.querySelector("form[data-autosubmit]");
  if (form) form.submit();
}

armConfirmations();
armCopyButtons();
armDialogs();
armQuestions();
armLiveStates();
armUploads();
submitAutomatically();
