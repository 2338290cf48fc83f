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

// The one row of a faces or tracks table in which nothing was found.
function noFaceRow(columns) {
  const tr = document.createElement("tr");
  tr.className = "no-face";
  const td = document.createElement("td");
  td.colSpan = columns;
  td.textContent = "no face found";
  tr.appendChild(td);
  return tr;
}

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
  if (!rows.length) rows.push(noFaceRow(FACE_COLUMNS.length));
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

// ---- video clips: upload, queue, progress, the anonymized clip ------------------------------
let videoInfo = { max_video_bytes: 100 * 1024 * 1024 };
let videoJob = null;  // { id (null while uploading), name, xhr, timer }

function videoMessage(text) {
  const m = $("video-message");
  m.textContent = text;
  m.hidden = !text;
}

function videoProgress(text, fraction) {
  $("video-progress-box").hidden = false;
  $("video-status").textContent = text;
  const bar = $("video-progress");
  if (fraction === null) bar.removeAttribute("value");  // indeterminate
  else bar.value = fraction;
}

function videoReset() {
  const player = $("video-player");
  player.pause();
  player.removeAttribute("src");
  player.load();
  $("video-result").hidden = true;
  $("video-card").classList.remove("has-result");
  $("video-progress-box").hidden = true;
  $("video-discard").hidden = true;
}

function videoDiscard(leaving) {
  // Stop following the current clip and delete it on the server (queued, processing or finished).
  const job = videoJob;
  videoJob = null;
  if (!job) return;
  clearTimeout(job.timer);
  if (job.xhr) job.xhr.abort();
  if (job.id) fetch(`/api/video/${job.id}`, { method: "DELETE", keepalive: leaving }).catch(() => {});
}

function videoFailed(text) {
  videoMessage(text);
  videoDiscard(false);
  videoReset();
}

const TRACK_COLUMNS = ["track", "seen (s)", "frames", "emotion", "emotions shown", "changes"];

function fillTracks(table, tracks, others, otherFrames) {
  const head = document.createElement("tr");
  TRACK_COLUMNS.forEach((name) => {
    const th = document.createElement("th");
    th.textContent = name;
    head.appendChild(th);
  });
  const rows = tracks.map((t) => {
    const tr = document.createElement("tr");
    tr.className = "track-row";
    const total = Object.values(t.emotions).reduce((a, b) => a + b, 0) || 1;
    const shares = Object.entries(t.emotions).sort((a, b) => b[1] - a[1])
      .map(([e, n]) => `${e} ${(100 * n / total).toFixed(0)} %`).join(", ");
    [t.track_id, `${t.first_s.toFixed(1)} - ${t.last_s.toFixed(1)}`, t.frames, t.emotion, shares, t.changes]
      .forEach((value, i) => {
        const td = document.createElement("td");
        td.textContent = value;
        if (i === 3) td.className = "emotion";
        tr.appendChild(td);
      });
    return tr;
  });
  if (!rows.length) rows.push(noFaceRow(TRACK_COLUMNS.length));
  if (others) {  // the short tracks (people glimpsed behind others) in one line, not one row each
    const tr = document.createElement("tr");
    tr.className = "others-row";
    const td = document.createElement("td");
    td.colSpan = TRACK_COLUMNS.length;
    td.textContent = `and ${others} shorter track${others === 1 ? "" : "s"} (${otherFrames} frames in all; ` +
      "every frame of every track is in the faces JSON)";
    tr.appendChild(td);
    rows.push(tr);
  }
  table.replaceChildren();
  table.createTHead().appendChild(head);
  table.createTBody().replaceChildren(...rows);
}

function minutes(s) {
  return s >= 90 ? `${Math.round(s / 60)} min` : `${Math.round(s)} s`;
}

function videoShowResult(job) {
  const s = job.summary;
  $("video-progress-box").hidden = true;
  $("video-player").src = job.video_url;
  $("video-download").href = `${job.video_url}?download=true`;
  $("video-faces").href = job.faces_url;
  const tracks = job.track_count;
  $("video-summary").textContent =
    `${videoJob.name}: ${s.frames} frames, ${s.width}x${s.height}, ${s.fps.toFixed(2)} fps, ` +
    `${s.audio ? "with" : "without"} sound, ${tracks} face track${tracks === 1 ? "" : "s"}, ` +
    `anonymized in ${s.processing_s.toFixed(1)} s. It is deleted from the server ` +
    `${minutes(videoInfo.fetched_grace_s || 120)} after it has been played or downloaded in full, ` +
    `in ${minutes(job.expires_in_s)} at the latest.`;
  fillTracks($("video-tracks"), job.tracks, job.other_tracks, job.other_frames);
  $("video-result").hidden = false;
  $("video-card").classList.add("has-result");  // the clip large: the card spans the page
}

function videoShowJob(job) {
  if (!videoJob || videoJob.id !== job.id) return;  // another clip was chosen meanwhile
  if (job.state === "done") {
    videoShowResult(job);
    return;
  }
  if (job.state === "failed" || job.state === "expired") {
    videoFailed(`${videoJob.name}: ${job.state}: ${job.message}`);
    return;
  }
  if (job.state === "queued") {
    videoProgress(`${videoJob.name}: waiting, position ${job.position} in the queue ` +
                  `(${job.processing} clip being processed)`, null);
  } else if (job.state === "processing") {
    const total = job.frames_total;
    videoProgress(`${videoJob.name}: anonymizing, frame ${job.frames_done} of ${total || "?"}`,
                  total ? job.frames_done / total : null);
  }
  videoJob.timer = setTimeout(videoPoll, 500);
}

async function videoPoll() {
  const job = videoJob;
  if (!job || !job.id) return;
  try {
    const resp = await fetch(`/api/video/${job.id}`);
    if (videoJob !== job) return;
    if (!resp.ok) {
      videoFailed(`${job.name}: ${await errorText(resp)}`);
      return;
    }
    videoShowJob(await resp.json());
  } catch (e) {
    if (videoJob === job) job.timer = setTimeout(videoPoll, 2000);  // the server may be restarting
  }
}

function uploadVideo(file) {
  if (!file) return;
  videoDiscard(false);
  videoReset();
  videoMessage("");
  if (file.size > videoInfo.max_video_bytes) {
    videoMessage(`${file.name} (${file.size} bytes) is larger than the limit of ${videoInfo.max_video_bytes} bytes ` +
                 `(${(videoInfo.max_video_bytes / 1024 / 1024).toFixed(0)} MB)`);
    return;
  }
  // XMLHttpRequest rather than fetch(): it reports the upload's progress.
  const xhr = new XMLHttpRequest();
  const job = { id: null, name: file.name, xhr, timer: null };
  videoJob = job;
  xhr.open("POST", `/api/video?name=${encodeURIComponent(file.name)}`);
  xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
  xhr.upload.onprogress = (ev) => {
    if (ev.lengthComputable && videoJob === job) {
      videoProgress(`${file.name}: uploading, ${(100 * ev.loaded / ev.total).toFixed(0)} %`, ev.loaded / ev.total);
    }
  };
  xhr.onload = () => {
    if (videoJob !== job) return;
    job.xhr = null;
    let body = null;
    try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
    if (xhr.status !== 202 || !body) {
      const detail = body && typeof body.detail === "string" ? body.detail : xhr.statusText;
      videoFailed(`${file.name}: ${xhr.status}: ${detail}`);
      return;
    }
    job.id = body.id;
    $("video-discard").hidden = false;
    videoShowJob(body);
  };
  xhr.onerror = () => {
    if (videoJob === job) videoFailed(`${file.name}: the server could not be reached; is it still running?`);
  };
  videoProgress(`${file.name}: uploading`, 0);
  $("video-discard").hidden = false;
  xhr.send(file);
}

$("video-input").addEventListener("change", (ev) => {
  uploadVideo(ev.target.files[0]);
  ev.target.value = "";
});
const videoDrop = $("video-drop");
videoDrop.addEventListener("dragover", (ev) => { ev.preventDefault(); videoDrop.classList.add("over"); });
videoDrop.addEventListener("dragleave", () => videoDrop.classList.remove("over"));
videoDrop.addEventListener("drop", (ev) => {
  ev.preventDefault();
  videoDrop.classList.remove("over");
  uploadVideo(ev.dataTransfer.files[0]);
});
$("video-player").addEventListener("error", () => {
  if (!$("video-result").hidden) videoMessage("The browser cannot play the anonymized clip (download it instead).");
});
$("video-discard").addEventListener("click", () => {
  videoDiscard(false);
  videoReset();
  videoMessage("");
});
window.addEventListener("pagehide", () => videoDiscard(true));  // the result is this page's: delete it on leaving

async function loadVideoInfo() {
  try {
    videoInfo = await (await fetch("/api/video/info")).json();
    const mp = (videoInfo.max_video_pixels / 1e6).toFixed(1);
    $("video-limits").textContent =
      `${(videoInfo.max_video_bytes / 1024 / 1024).toFixed(0)} MB, ${videoInfo.max_video_seconds} s and ${mp} ` +
      "megapixels per frame";
    $("video-keep").textContent = `${minutes(videoInfo.fetched_grace_s)} after it has been played or downloaded ` +
      `in full, or after ${minutes(videoInfo.result_timeout_s)}`;
  } catch (e) {
    // the still-image part reports an unreachable server
  }
}

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
  loadVideoInfo();
  pollRos();
}
init();
