// yolod's page: live camera numbers and objects, and the try-it upload.
// The page works without this file (its status part reloads itself); this
// makes it live. No framework, no build step, nothing from another origin.
"use strict";

(function () {
  const body = document.body;
  if (document.getElementById("login")) return; // signed out: only the form
  const authOn = body.dataset.auth === "on";
  // Requests the page makes with its session cookie carry this header,
  // which a form on another site cannot send (SECURITY.md).
  const pageHeaders = { "x-yolod-page": "1" };

  const tiles = new Map();
  for (const tile of document.querySelectorAll("article.camera")) {
    tiles.set(tile.dataset.camera, { el: tile, last: null });
  }

  function field(root, name) {
    return root.querySelector('[data-field="' + name + '"]');
  }

  function setText(root, name, value) {
    const el = field(root, name);
    if (el && value !== undefined && value !== null) el.textContent = String(value);
  }

  function showObjects(list, objects) {
    list.replaceChildren();
    for (const o of objects) {
      const li = document.createElement("li");
      const label = document.createElement("span");
      label.className = "label";
      label.textContent = o.name;
      const conf = document.createElement("span");
      conf.className = "conf";
      conf.textContent = Number(o.confidence).toFixed(2);
      li.append(label, " ", conf);
      list.append(li);
    }
  }

  // Camera counters, the health numbers and the latency table: the JSON
  // status at "/", every two seconds.
  async function poll() {
    let status;
    try {
      const answer = await fetch("/", { headers: { Accept: "application/json" } });
      status = (await answer.json()).data;
    } catch (e) {
      return;
    }
    const now = performance.now();
    for (const camera of status.cameras || []) {
      const tile = tiles.get(camera.name);
      if (!tile) continue;
      for (const name of ["state", "frames_processed", "frames_dropped", "format", "last_error"]) {
        setText(tile.el, name, camera[name]);
      }
      if (tile.last) {
        const seconds = (now - tile.last.at) / 1000;
        const fps = (camera.frames_processed - tile.last.processed) / seconds;
        setText(tile.el, "fps", seconds > 0 ? fps.toFixed(1) : "–");
      }
      tile.last = { at: now, processed: camera.frames_processed };
      if (!tile.streamed) showObjects(field(tile.el, "objects"), camera.objects);
    }
    for (const name of ["requests", "queue_depth"]) setText(document, name, status[name]);
    setText(document, "uptime_seconds", status.uptime_seconds + " s");
    for (const stage of status.latency || []) {
      const row = document.querySelector('#latency tr[data-stage="' + stage.stage + '"]');
      if (!row) continue;
      const cells = row.querySelectorAll("td");
      const ms = (v) => (v === null || v === undefined ? "–" : v.toFixed(1));
      cells[0].textContent = ms(stage.p50_ms);
      cells[1].textContent = ms(stage.mean_ms);
      cells[2].textContent = String(stage.count);
    }
  }
  poll();
  setInterval(poll, 2000);

  // Objects as each frame is processed: the camera log stream (SSE).
  if (tiles.size > 0 && window.EventSource) {
    const events = new EventSource("/v1/stream");
    events.onmessage = function (event) {
      let line;
      try {
        line = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      const tile = tiles.get(line.camera);
      if (!tile) return;
      tile.streamed = true;
      showObjects(field(tile.el, "objects"), line.data || []);
    };
  }

  // A broken MJPEG stream (a restart, a viewer cap) is tried again.
  for (const img of document.querySelectorAll("img.live")) {
    img.addEventListener("error", function () {
      const src = img.src.replace(/&retry=\d+$/, "");
      setTimeout(function () {
        img.src = src + "&retry=" + Date.now();
      }, 3000);
    });
  }

  // Try it: the upload, sent as any client sends it.
  const form = document.getElementById("try-form");
  if (!form) return;
  const fileInput = document.getElementById("file");
  const drop = document.getElementById("drop");
  const result = document.getElementById("result");
  const errorBox = document.getElementById("result-error");

  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, function (e) {
      e.preventDefault();
      drop.classList.add("over");
    });
  }
  drop.addEventListener("dragleave", function () {
    drop.classList.remove("over");
  });
  drop.addEventListener("drop", function (e) {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length > 0) {
      fileInput.files = e.dataTransfer.files;
      form.requestSubmit();
    }
  });

  function curlCommand(model, file, fields) {
    const origin = window.location.origin;
    const parts = ["curl -X POST " + origin + "/v1/predict/" + encodeURIComponent(model)];
    if (authOn) parts.push('-H "x-api-key: $YOLOD_API_KEY"');
    parts.push("-F 'file=@" + file.name.replace(/'/g, "'\\''") + "'");
    for (const [k, v] of fields) parts.push("-F " + k + "=" + v);
    return parts.join(" \\\n  ");
  }

  function draw(file, objects) {
    const canvas = document.getElementById("result-canvas");
    const url = URL.createObjectURL(file);
    const img = new Image();
    img.onload = function () {
      canvas.width = img.naturalWidth;
      canvas.height = img.naturalHeight;
      const ctx = canvas.getContext("2d");
      ctx.drawImage(img, 0, 0);
      const line = Math.max(2, Math.round((canvas.width + canvas.height) / 2 * 0.003));
      const fontPx = Math.max(12, Math.round((canvas.width + canvas.height) / 2 * 0.025));
      ctx.lineWidth = line;
      ctx.font = fontPx + "px sans-serif";
      ctx.textBaseline = "top";
      for (const o of objects) {
        const hue = (o.class * 47) % 360;
        const b = o.box;
        ctx.strokeStyle = "hsl(" + hue + ",90%,50%)";
        ctx.strokeRect(b.x1, b.y1, b.x2 - b.x1, b.y2 - b.y1);
        const label = o.name + " " + o.confidence.toFixed(2);
        const w = ctx.measureText(label).width + 2 * line;
        const top = b.y1 >= fontPx + 2 * line ? b.y1 - fontPx - 2 * line : b.y1;
        const left = Math.max(0, Math.min(b.x1, canvas.width - w)); // the label stays inside
        ctx.fillStyle = "hsl(" + hue + ",90%,50%)";
        ctx.fillRect(left, top, w, fontPx + 2 * line);
        ctx.fillStyle = "#fff";
        ctx.fillText(label, left + line, top + line);
      }
      URL.revokeObjectURL(url);
    };
    img.src = url;
  }

  form.addEventListener("submit", async function (e) {
    e.preventDefault();
    const file = fileInput.files[0];
    if (!file) return;
    const model = document.getElementById("model").value;
    const fields = ["size", "confidence", "iou"].map((k) => [k, document.getElementById(k).value]);
    const data = new FormData();
    data.append("file", file);
    for (const [k, v] of fields) data.append(k, v);
    errorBox.hidden = true;
    let answer, text;
    try {
      answer = await fetch("/v1/predict/" + encodeURIComponent(model), {
        method: "POST",
        body: data,
        headers: pageHeaders,
      });
      text = await answer.text();
    } catch (err) {
      errorBox.textContent = "The request failed: " + err;
      errorBox.hidden = false;
      return;
    }
    let parsed = null;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      // shown as text below
    }
    document.getElementById("result-json").textContent = parsed ? JSON.stringify(parsed, null, 2) : text;
    document.getElementById("result-curl").textContent = curlCommand(model, file, fields);
    result.hidden = false;
    if (!answer.ok || !parsed || !parsed.success) {
      errorBox.textContent = (parsed && parsed.message) || "HTTP " + answer.status;
      errorBox.hidden = false;
      showObjects(document.getElementById("result-objects"), []);
      return;
    }
    showObjects(document.getElementById("result-objects"), parsed.data);
    draw(file, parsed.data);
  });

  document.getElementById("copy-curl").addEventListener("click", function () {
    const text = document.getElementById("result-curl").textContent;
    if (navigator.clipboard) navigator.clipboard.writeText(text);
  });
})();
