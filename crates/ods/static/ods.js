// ODS web UI helpers (no build step; loaded on every page, after htmx).
// - forms with data-confirm="..." ask before submitting;
// - buttons with data-open="ID" / data-close open and close a <dialog>;
// - buttons with data-copy="TEXT" copy it to the clipboard;
// - htmx errors (4xx/5xx) land in the page's error banner;
// - odsCsrf() gives the CSRF token for scripts' own requests (header X-CSRF-Token).
"use strict";

function odsCsrf() {
  const m = document.querySelector('meta[name="csrf-token"]');
  return m ? m.content : "";
}

function odsBanner(message, ok) {
  const err = document.getElementById("error-banner");
  const flash = document.getElementById("flash");
  if (!err || !flash) return;
  const el = ok ? flash : err;
  (ok ? err : flash).hidden = true;
  el.textContent = message;
  el.hidden = false;
}

document.addEventListener("submit", (ev) => {
  const form = ev.target;
  const q = form.getAttribute("data-confirm");
  if (q && !window.confirm(q)) ev.preventDefault();
});

document.addEventListener("click", (ev) => {
  const t = ev.target.closest("[data-open],[data-close],[data-copy]");
  if (!t) return;
  if (t.hasAttribute("data-open")) {
    const d = document.getElementById(t.getAttribute("data-open"));
    if (d && d.showModal) d.showModal();
  } else if (t.hasAttribute("data-close")) {
    const d = t.closest("dialog");
    if (d) d.close();
  } else if (t.hasAttribute("data-copy")) {
    const text = t.getAttribute("data-copy");
    const done = () => { t.textContent = "Copied"; setTimeout(() => { t.textContent = "Copy"; }, 1500); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, () => window.prompt("Copy this URL:", text));
    } else {
      window.prompt("Copy this URL:", text);
    }
  }
});

document.addEventListener("htmx:responseError", (ev) => {
  const xhr = ev.detail.xhr;
  const doc = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
  const alert = doc.querySelector('[role="alert"]');
  odsBanner(alert ? alert.textContent.trim() : "The server answered " + xhr.status + ".", false);
});

document.addEventListener("htmx:sendError", () => {
  odsBanner("The server cannot be reached. Check the connection; the page retries by itself.", false);
});
