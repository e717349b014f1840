// Packages tab: uploads with a real progress bar (XMLHttpRequest upload events),
// cancel, and drag-and-drop onto the page. The request streams the file as
// multipart/form-data with the CSRF token in X-CSRF-Token.
"use strict";

(function () {
  const form = document.getElementById("upload-form");
  if (!form) return;
  const file = document.getElementById("up-file");
  const start = document.getElementById("up-start");
  const cancel = document.getElementById("up-cancel");
  const box = document.getElementById("up-progress");
  const bar = document.getElementById("up-bar");
  const text = document.getElementById("up-text");
  const drop = document.getElementById("dropzone");
  let xhr = null;

  function size(n) {
    const units = ["B", "KB", "MB", "GB", "TB"];
    let v = n, i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return v.toFixed(1) + " " + units[i];
  }

  function done() {
    xhr = null;
    start.disabled = false;
    file.disabled = false;
    cancel.hidden = true;
  }

  function upload(f) {
    const data = new FormData();
    data.append("stage", document.getElementById("up-stage").value);
    if (document.getElementById("up-replace").checked) data.append("replace", "true");
    data.append("file", f, f.name);
    xhr = new XMLHttpRequest();
    xhr.open("POST", "/packages/upload");
    xhr.setRequestHeader("X-CSRF-Token", odsCsrf());
    xhr.setRequestHeader("X-ODS-Fragment", "1");
    start.disabled = true;
    file.disabled = true;
    cancel.hidden = false;
    box.hidden = false;
    bar.value = 0;
    text.textContent = "Starting upload of " + f.name + "...";
    xhr.upload.addEventListener("progress", (e) => {
      if (!e.lengthComputable) return;
      const pct = Math.floor((e.loaded / e.total) * 100);
      bar.value = pct;
      text.textContent = size(e.loaded) + " of " + size(e.total) + " (" + pct + "%)";
      if (e.loaded === e.total) text.textContent += ", checking on the server...";
    });
    xhr.addEventListener("load", () => {
      const doc = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
      const msg = doc.querySelector('[role="alert"]');
      const said = msg ? msg.textContent.trim() : "";
      if (xhr.status === 201) {
        bar.value = 100;
        text.textContent = "Done: 100%";
        odsBanner(said || "Uploaded.", true);
        form.reset();
        document.body.dispatchEvent(new Event("ods:refresh"));
      } else {
        text.textContent = "Upload failed.";
        odsBanner(said || ("The upload failed (HTTP " + xhr.status + ")."), false);
      }
      done();
    });
    xhr.addEventListener("error", () => {
      text.textContent = "Upload failed.";
      odsBanner("The upload was cut off: the server cannot be reached or refused the request.", false);
      done();
    });
    xhr.addEventListener("abort", () => {
      text.textContent = "Upload cancelled.";
      odsBanner("The upload was cancelled; nothing was kept.", false);
      done();
    });
    xhr.send(data);
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (xhr) return;
    if (!file.files.length) {
      odsBanner("Select a file to upload first.", false);
      return;
    }
    upload(file.files[0]);
  });
  cancel.addEventListener("click", () => { if (xhr) xhr.abort(); });

  ["dragenter", "dragover"].forEach((t) => document.addEventListener(t, (e) => {
    e.preventDefault();
    drop.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((t) => document.addEventListener(t, (e) => {
    e.preventDefault();
    if (t === "dragleave" && e.relatedTarget) return;
    drop.classList.remove("over");
  }));
  document.addEventListener("drop", (e) => {
    if (xhr || !e.dataTransfer || !e.dataTransfer.files.length) return;
    upload(e.dataTransfer.files[0]);
  });
})();
