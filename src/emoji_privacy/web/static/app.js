// emoji_privacy web demo: plain JavaScript, no external files.
"use strict";

const $ = (id) => document.getElementById(id);
let info = { max_upload_bytes: 10 * 1024 * 1024, formats: ["jpeg", "png", "webp"] };

// ---- messages and the faces table ------------------------------------------------------
function showMessage(text) {
  const m = $("message");
  m.textContent = text;
  m.hidden = !text;
}

async function errorText(resp) {
  try {
    const body = await resp.json();
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    return `${resp.status}: ${detail}`;
  } catch (e) {
    return `${resp.status} ${resp.statusText}`;
  }
}

const FACE_COLUMNS = ["track", "emotion", "confidence", "box (x0, y0, x1, y1)", "detection"];

function makeFacesTable(table) {
  const tr = document.createElement("tr");
  FACE_COLUMNS.forEach((name) => {
    const th = document.createElement("th");
    th.textContent = name;
    tr.appendChild(th);
  });
  table.createTHead().appendChild(tr);
  table.createTBody();
}
document.querySelectorAll("table.faces").forEach(makeFacesTable);

function fillFaces(table, faces) {
  const rows = faces.map((f) => {
    const tr = document.createElement("tr");
    tr.className = "face-row";
    const cells = [
      f.track_id,
      f.emotion,
      `${(100 * f.confidence).toFixed(0)} %`,
      f.box.map((v) => v.toFixed(0)).join(", "),
      f.score.toFixed(2),
    ];
    cells.forEach((value, i) => {
      const td = document.createElement("td");
      td.textContent = value;
      if (i === 1) td.className = "emotion";
      tr.appendChild(td);
    });
    return tr;
  });
  if (!rows.length) {
    const tr = document.createElement("tr");
    tr.className = "no-face";
    const td = document.createElement("td");
    td.colSpan = FACE_COLUMNS.length;
    td.textContent = "no face found";
    tr.appendChild(td);
    rows.push(tr);
  }
  table.tBodies[0].replaceChildren(...rows);
}

// ---- still images: demo, upload, URL ---------------------------------------------------
async function anonymize(label, request) {
  showMessage("");
  $("result").hidden = true;  // never leave an older result looking like this one's
  $("busy").hidden = false;
  try {
    const resp = await request();
    if (!resp.ok) {
      showMessage(`${label}: ${await errorText(resp)}`);
      return;
    }
    const r = await resp.json();
    $("result-image").src = r.image_data_url;
    $("result-summary").textContent =
      `${label}: ${r.faces.length} face${r.faces.length === 1 ? "" : "s"}, ` +
      `${r.width}x${r.height}, ${r.processing_ms.toFixed(0)} ms`;
    fillFaces($("faces"), r.faces);
    $("result").hidden = false;
  } catch (e) {
    showMessage(`${label}: the server could not be reached (${e.message}); is it still running?`);
  } finally {
    $("busy").hidden = true;
  }
}

async function loadDemos() {
  const resp = await fetch("/api/demo");
  const demos = await resp.json();
  $("demo-list").replaceChildren(...demos.map((d) => {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = d.title;
    b.title = d.credit;
    b.dataset.name = d.name;
    b.addEventListener("click", () => anonymize(d.title, () => fetch(`/api/demo/${encodeURIComponent(d.name)}`)));
    return b;
  }));
}

function uploadFile(file) {
  if (!file) return;
  if (file.size > info.max_upload_bytes) {
    showMessage(`${file.name} (${file.size} bytes) is larger than the limit of ${info.max_upload_bytes} bytes ` +
                `(${info.max_upload_bytes / 1024 / 1024} MB)`);
    $("result").hidden = true;
    return;
  }
  anonymize(file.name, () => fetch("/api/anonymize", {
    method: "POST",
    headers: { "Content-Type": file.type || "application/octet-stream" },
    body: file,
  }));
}

$("upload-input").addEventListener("change", (ev) => {
  uploadFile(ev.target.files[0]);
  ev.target.value = "";
});
const drop = $("drop-zone");
drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (ev) => {
  ev.preventDefault();
  drop.classList.remove("over");
  uploadFile(ev.dataTransfer.files[0]);
});

$("url-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const url = $("url-input").value.trim();
  anonymize(url, () => fetch("/api/anonymize-url", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ url }),
  }));
});

// ---- live: the browser's webcam over a WebSocket --------------------------------------
let live = null;

function liveStatus(text) { $("live-status").textContent = text; }

function sendFrame() {
  if (!live || live.ws.readyState !== WebSocket.OPEN) return;
  const v = live.video;
  if (!v.videoWidth) { setTimeout(sendFrame, 50); return; }
  live.canvas.width = v.videoWidth;
  live.canvas.height = v.videoHeight;
  live.canvas.getContext("2d").drawImage(v, 0, 0);
  live.canvas.toBlob((blob) => { if (live && blob) live.ws.send(blob); }, "image/jpeg", 0.85);
}

async function startLive() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    liveStatus("This page has no camera access: browsers allow webcams only on https:// or http://localhost pages.");
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (e) {
    liveStatus(`The webcam could not be opened (${e.name}: ${e.message}).`);
    return;
  }
  const video = $("live-video");
  video.srcObject = stream;
  await video.play();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws/live`);
  ws.binaryType = "blob";
  live = { stream, ws, video, canvas: document.createElement("canvas"), meta: null, frames: 0, t0: performance.now() };
  $("live-start").disabled = true;
  $("live-stop").disabled = false;
  liveStatus("Connecting…");
  ws.onopen = () => { liveStatus("Streaming…"); sendFrame(); };
  ws.onmessage = (ev) => {
    if (!live) return;
    if (typeof ev.data === "string") {
      const m = JSON.parse(ev.data);
      if (m.error) {
        liveStatus(`Frame refused: ${m.error}`);
        $("live-image").hidden = true;
        setTimeout(sendFrame, 500);
      } else {
        live.meta = m;
      }
      return;
    }
    const url = URL.createObjectURL(ev.data);
    const img = $("live-image");
    img.onload = () => URL.revokeObjectURL(url);
    img.src = url;
    img.hidden = false;
    live.frames += 1;
    const fps = live.frames / ((performance.now() - live.t0) / 1000);
    if (live.meta) {
      fillFaces($("live-faces"), live.meta.faces);
      $("live-faces").hidden = false;
      liveStatus(`${live.meta.faces.length} face(s), ${live.meta.processing_ms.toFixed(0)} ms per frame, ` +
                 `${fps.toFixed(1)} fps`);
    }
    sendFrame();
  };
  ws.onerror = () => liveStatus("The WebSocket failed: is the server still running?");
  ws.onclose = (ev) => {
    if (live && live.ws === ws) {
      stopLive();
      liveStatus(`Stopped${ev.reason ? `: ${ev.reason}` : ""}.`);
    }
  };
}

function stopLive() {
  if (!live) return;
  const l = live;
  live = null;
  l.stream.getTracks().forEach((t) => t.stop());
  if (l.ws.readyState <= WebSocket.OPEN) l.ws.close();
  $("live-start").disabled = false;
  $("live-stop").disabled = true;
  liveStatus("Stopped.");
}

$("live-start").addEventListener("click", startLive);
$("live-stop").addEventListener("click", stopLive);

// ---- live: the ROS graph's /anonymized/image ------------------------------------------
async function pollRos() {
  try {
    const s = await (await fetch("/api/ros/status")).json();
    const img = $("ros-image");
    $("ros-faces").hidden = !s.streaming;
    if (s.streaming) {
      $("ros-status").textContent = `${s.image_topic} from ${s.master_uri}`;
      if (img.hidden) { img.src = "/api/ros/stream.mjpg"; img.hidden = false; }
      const f = await (await fetch("/api/ros/faces")).json();
      fillFaces($("ros-faces"), f.faces || []);
    } else {
      $("ros-status").textContent = s.message;
      if (!img.hidden) { img.removeAttribute("src"); img.hidden = true; }
    }
  } catch (e) {
    $("ros-status").textContent = "The server could not be reached.";
  }
  setTimeout(pollRos, 1000);
}

async function init() {
  try {
    info = await (await fetch("/api/info")).json();
    $("limit-mb").textContent = (info.max_upload_bytes / 1024 / 1024).toFixed(0);
    if (info.pipeline_error) showMessage(`The anonymizer is not running: ${info.pipeline_error}`);
  } catch (e) {
    showMessage("The server could not be reached.");
  }
  loadDemos();
  pollRos();
}
init();
