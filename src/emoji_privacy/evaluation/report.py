"""The report folder of an evaluation: report.md and report.html (the same content, images
inline in the HTML), CSVs of per-frame faces and tracks, one emotion timeline PNG per track, a
timing histogram, the anonymized MP4 and a contact sheet.

The document is built once as a list of blocks (headings, paragraphs, tables, images) and
rendered to both formats, so they cannot disagree.
"""

from __future__ import annotations

import base64
import csv
import html
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .. import EMOTIONS, emotion_name
from ..image_io import as_bgr
from ..markdown import markdown_table
from .records import Evaluation, TrackSummary

TIMELINE_MIN_FRAMES = 10
"""Tracks detected in fewer frames get no timeline (flickering false detections would swamp the report)."""
TIMELINE_MAX = 12
TABLE_MAX_TRACKS = 40
EMOTION_COLORS = ("#d62728", "#8c564b", "#9467bd", "#ffbf00", "#1f77b4", "#ff7f0e", "#7f7f7f")


# --- blocks -------------------------------------------------------------------------------------


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str


@dataclass
class Table:
    headers: list[str]
    rows: list[list[object]]


@dataclass
class Picture:
    file: str  # relative to the report folder
    caption: str


Block = Heading | Paragraph | Table | Picture


def to_markdown(blocks: list[Block]) -> str:
    out = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append("#" * b.level + " " + b.text)
        elif isinstance(b, Paragraph):
            out.append(b.text)
        elif isinstance(b, Table):
            out.append(markdown_table(b.headers, b.rows))
        else:
            out.append(f"![{b.caption}]({b.file})")
    return "\n\n".join(out) + "\n"


def to_html(blocks: list[Block], folder: Path, title: str) -> str:
    """Self-contained HTML: every picture is embedded as a data URI."""
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
           "body{font-family:sans-serif;max-width:1300px;margin:auto;padding:1em}"
           "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
           "img{max-width:100%}figure{margin:1em 0}figcaption{color:#555}</style></head><body>"]
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"<h{b.level}>{html.escape(b.text)}</h{b.level}>")
        elif isinstance(b, Paragraph):
            out.append(f"<p>{html.escape(b.text)}</p>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{html.escape(h)}</th>" for h in b.headers)
            body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in b.rows)
            out.append(f"<table><tr>{head}</tr>{body}</table>")
        else:
            data = base64.b64encode((folder / b.file).read_bytes()).decode()
            out.append(f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(b.caption)}'>"
                       f"<figcaption>{html.escape(b.caption)}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out)


# --- streamed outputs: video and contact sheet ------------------------------------------------------


class VideoOut:
    """MP4 (mp4v) of the anonymized frames, opened at the first frame's size."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = path, fps
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] = (0, 0)
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        if self._writer is None:
            self._size = (frame.shape[1], frame.shape[0])
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self._size)
        if (frame.shape[1], frame.shape[0]) != self._size:
            frame = cv2.resize(frame, self._size)
        self._writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()


class SheetFrames:
    """Picks the contact sheet's frames while the bag streams by: ``count`` evenly spaced frames
    and, first, up to ``leaked_max`` frames where a face leaked."""

    def __init__(self, total: int, count: int = 6, leaked_max: int = 4, width: int = 640) -> None:
        self.wanted = {int(i) for i in np.linspace(0, max(total - 1, 0), count).round()} if total else set()
        self.leaked_max, self.width = leaked_max, width
        self.regular: list[tuple[int, np.ndarray | None, np.ndarray, str]] = []
        self.leaked: list[tuple[int, np.ndarray | None, np.ndarray, str]] = []

    def _small(self, img: np.ndarray | None) -> np.ndarray | None:
        if img is None or img.shape[1] <= self.width:
            return None if img is None else img.copy()
        return cv2.resize(img, (self.width, round(img.shape[0] * self.width / img.shape[1])),
                          interpolation=cv2.INTER_AREA)

    def offer(self, index: int, original: np.ndarray | None, anonymized: np.ndarray, leaked: bool,
              stamp: float) -> None:
        if leaked and len(self.leaked) < self.leaked_max:
            self.leaked.append((index, self._small(original), self._small(anonymized), f"frame {index}: LEAK"))
        elif index in self.wanted:
            self.regular.append((index, self._small(original), self._small(anonymized), f"frame {index}"))

    def image(self) -> np.ndarray | None:
        chosen = self.leaked + self.regular
        if not chosen:
            return None
        if all(orig is not None for _, orig, _, _ in chosen):
            return contact_sheet([(o, a) for _, o, a, _ in chosen],
                                 labels=[(f"{t}: original", f"{t}: anonymized") for _, _, _, t in chosen])
        # No originals (a listener bag without its input): anonymized frames two per row.
        cells = [(a, t) for _, _, a, t in chosen]
        if len(cells) % 2:
            cells.append((np.zeros_like(cells[-1][0]), ""))
        return contact_sheet([(cells[i][0], cells[i + 1][0]) for i in range(0, len(cells), 2)],
                             labels=[(cells[i][1], cells[i + 1][1]) for i in range(0, len(cells), 2)])


# --- figures ---------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_timeline(ev: Evaluation, track: TrackSummary, path: Path) -> None:
    """Raw per-frame probabilities (stacked) over the emoji shown after smoothing, for one track."""
    plt = _pyplot()
    t0 = ev.records[0].stamp
    times, probs, shown, held = [], [], [], []
    for r in ev.records[track.first_index - ev.records[0].index: track.last_index - ev.records[0].index + 1]:
        for f in r.faces:
            if f.track_id != track.track_id:
                continue
            if f.held:
                held.append((r.stamp - t0, f.emotion_index if f.emotion_index >= 0 else np.nan))
            else:
                times.append(r.stamp - t0)
                probs.append(f.probabilities if len(f.probabilities) else np.full(len(EMOTIONS), np.nan))
                shown.append(f.emotion_index if f.emotion_index >= 0 else np.nan)  # unknown: a gap
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 3.6), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    p = np.nan_to_num(np.array(probs, np.float64).reshape(-1, len(EMOTIONS)))
    top.stackplot(times, p.T, labels=EMOTIONS, colors=EMOTION_COLORS, alpha=0.85)
    top.set_ylim(0, 1)
    top.set_ylabel("raw p")
    top.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7)
    top.set_title(f"track {track.track_id}: emotion per frame (raw) and emoji shown (smoothed)", fontsize=9)
    bottom.step(times, shown, where="post", color="black", lw=1.2, label="shown")
    if held:
        hx, hy = zip(*held, strict=True)
        bottom.scatter(hx, hy, marker="x", color="#d62728", s=12, label="held (detector missed)")
    bottom.set_yticks(range(len(EMOTIONS)), EMOTIONS, fontsize=7)
    bottom.set_ylim(-0.5, len(EMOTIONS) - 0.5)
    bottom.set_xlabel("time since the first frame (s)")
    bottom.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_histogram(values: np.ndarray, path: Path, what: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 2.8))
    ax.hist(values, bins=40, color="#1f77b4")
    for q, style in ((50, "--"), (99, ":")):
        v = float(np.percentile(values, q))
        ax.axvline(v, color="black", ls=style, lw=1, label=f"p{q} {v:.1f} ms")
    ax.set_xlabel(f"{what} (ms)")
    ax.set_ylabel("frames")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


# --- the report ---------------------------------------------------------------------------------------


def _ms(values: np.ndarray) -> str:
    if not len(values):
        return "-"
    return (f"mean {values.mean():.1f}, p50 {np.percentile(values, 50):.1f}, p99 {np.percentile(values, 99):.1f}, "
            f"max {values.max():.1f}")


def _pct(part: int, whole: int) -> str:
    return f"{part} of {whole} ({100 * part / whole:.1f}%)" if whole else f"{part} of 0"


def summary_blocks(ev: Evaluation) -> list[Block]:
    tracks = ev.tracks()
    rows: list[list[object]] = [
        ["bag", ev.bag], ["mode", {"offline": "offline: the pipeline ran on the bag's frames here",
                                   "listener": "listener output: what the live listener published"}[ev.mode]],
        ["image topic", ev.image_topic]]
    if ev.mode == "listener":
        rows.append(["input topic (originals)", ev.input_topic or "not recorded"])
    rows += [["frames evaluated", ev.frames], ["frame size", f"{ev.width}x{ev.height}"],
             ["duration", f"{ev.duration_s:.2f} s at {ev.source_fps:.1f} fps (from the stamps)"],
             ["faces per frame (detected)", f"{ev.faces_per_frame():.2f}"],
             ["held face-frames (covered while the detector missed)",
              ev.held_face_frames() if ev.mode == "offline" else "not published by the listener"],
             ["tracks", len(tracks)]]
    if ev.undecodable:
        rows.append(["undecodable frames", f"{ev.undecodable} (first: {ev.first_error})"])
    rows += [[k, v] for k, v in ev.settings.items()]
    return [Heading("Summary"), Table(["", ""], rows)]


def privacy_blocks(ev: Evaluation) -> list[Block]:
    blocks: list[Block] = [Heading("Privacy")]
    s = ev.leak_summary()
    if s is None:
        why = ("the bag holds no original frames (record the input topic too)" if ev.mode == "listener"
               else "it was turned off (--no-leak-check)")
        return blocks + [Paragraph(f"The leak metric did not run: {why}.")]
    blocks += [Paragraph(f"Independent detector {ev.leak_detector}."), Table(["measure", "value"], [
        ["original face-frames", s.face_frames],
        ["leaked face-frames", _pct(s.leaked, s.face_frames)],
        ["of which with the face hidden (under 2% of it unchanged: the detector fired on the emoji)",
         s.leaked_hidden],
        ["frames with a leak", _pct(s.frames_with_leak, ev.frames)],
        ["longest run of consecutive leaked frames (any person)", s.max_run],
        ["people (reference tracks)", len(s.frames_per_person)],
        ["track id switches (pipeline id covering one person changed)", s.id_switches],
        ["original faces no pipeline face overlapped", s.uncovered],
    ])]
    leaking = sorted((t for t, n in s.longest_run.items() if n), key=lambda t: -s.longest_run[t])
    if leaking:
        blocks.append(Table(["person (reference track)", "frames present", "longest leaked run"],
                            [[t, s.frames_per_person[t], s.longest_run[t]] for t in leaking]))
    return blocks


def speed_blocks(ev: Evaluation, histogram: str | None) -> list[Block]:
    blocks: list[Block] = [Heading("Speed")]
    if ev.mode == "offline":
        ms = ev.process_ms()
        rows = [["pipeline ms per frame", _ms(ms)], ["pipeline fps", f"{ev.pipeline_fps():.1f}"],
                ["evaluation fps (everything: bag, pipeline, leak check, video)", f"{ev.evaluation_fps():.1f}"]]
    else:
        lat = ev.latency_ms()
        how = ("output receipt minus the receipt of the same input frame (both recorded by rosbag record)"
               if ev.input_topic else "output receipt minus the image stamp")
        rows = [["input frames", ev.input_frames], ["input fps", f"{ev.input_fps():.1f}"],
                ["output frames", ev.frames], ["output fps", f"{ev.output_fps():.1f}"],
                ["dropped frames", _pct(ev.dropped, ev.input_frames)],
                ["of which before the first output", ev.dropped_at_start],
                ["latency ms", _ms(lat)], ["latency measured as", how]]
        rows += [[f"listener's last /diagnostics: {k}", v] for k, v in ev.diagnostics.items()
                 if k in ("frames", "errors", "masked", "dropped", "processing_ms_mean", "last_error") and v != ""]
    blocks.append(Table(["", ""], rows))
    if histogram:
        blocks.append(Picture(histogram, "pipeline time per frame" if ev.mode == "offline" else "latency per frame"))
    return blocks


def track_rows(tracks: list[TrackSummary]) -> list[list[object]]:
    return [[t.track_id, t.first_index, t.last_index, f"{t.lifetime_s:.2f}", t.detected, t.held, t.main_emotion,
             t.shown_changes, t.raw_changes] for t in tracks]


TRACK_HEADERS = ["track", "first frame", "last frame", "lifetime s", "detected frames", "held frames",
                 "main emotion", "emoji changes (smoothed)", "argmax changes (raw)"]


def write_csvs(ev: Evaluation, out: Path, tracks: list[TrackSummary]) -> None:
    with open(out / "frames.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["frame", "stamp", "faces_detected", "faces_held", "original_faces", "leaked", "process_ms",
                    "latency_ms"])
        for r in ev.records:
            lk = r.leaks
            w.writerow([r.index, f"{r.stamp:.6f}", len(r.detected), len(r.faces) - len(r.detected),
                        "" if lk is None else len(lk.truth), "" if lk is None else lk.count,
                        "" if math.isnan(r.process_ms) else f"{r.process_ms:.2f}",
                        "" if math.isnan(r.latency_ms) else f"{r.latency_ms:.2f}"])
    with open(out / "faces.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["frame", "stamp", "track_id", "held", "x0", "y0", "x1", "y1", "score", "emotion", "confidence",
                    *[f"p_{e}" for e in EMOTIONS]])
        for r in ev.records:
            for face in r.faces:
                probs = [f"{p:.4f}" for p in face.probabilities] or [""] * len(EMOTIONS)
                w.writerow([r.index, f"{r.stamp:.6f}", face.track_id, int(face.held),
                            *[f"{v:.1f}" for v in face.box], f"{face.score:.3f}", emotion_name(face.emotion_index),
                            f"{face.confidence:.3f}", *probs])
    with open(out / "tracks.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(TRACK_HEADERS)
        w.writerows(track_rows(tracks))


def write_report(ev: Evaluation, out: Path, sheet: np.ndarray | None, video: str | None) -> Path:
    """Write everything but the video (streamed while evaluating) into ``out``; returns report.md."""
    out.mkdir(parents=True, exist_ok=True)
    tracks = ev.tracks()
    write_csvs(ev, out, tracks)
    values = ev.process_ms() if ev.mode == "offline" else ev.latency_ms()
    histogram = None
    if len(values):
        histogram = "timing.png"
        plot_histogram(values, out / histogram, "pipeline time" if ev.mode == "offline" else "latency")
    blocks: list[Block] = [Heading(f"Evaluation of {Path(ev.bag).name}", 1)]
    blocks += summary_blocks(ev) + privacy_blocks(ev) + speed_blocks(ev, histogram)
    blocks.append(Heading("Tracks"))
    shown = sorted(tracks, key=lambda t: -t.detected)[:TABLE_MAX_TRACKS]
    if len(tracks) > len(shown):
        blocks.append(Paragraph(f"The {len(shown)} tracks detected longest of {len(tracks)}; all are in tracks.csv."))
    blocks.append(Table(TRACK_HEADERS, track_rows(sorted(shown, key=lambda t: t.track_id))))
    timeline_tracks = [t for t in sorted(tracks, key=lambda t: -t.detected) if t.detected >= TIMELINE_MIN_FRAMES]
    blocks.append(Heading("Emotion timelines"))
    if not timeline_tracks:
        blocks.append(Paragraph(f"No track was detected in {TIMELINE_MIN_FRAMES} frames or more."))
    for t in sorted(timeline_tracks[:TIMELINE_MAX], key=lambda t: t.track_id):
        name = f"timeline_track_{t.track_id}.png"
        plot_timeline(ev, t, out / name)
        blocks.append(Picture(name, f"track {t.track_id}"))
    if len(timeline_tracks) > TIMELINE_MAX:
        blocks.append(Paragraph(f"Timelines of the {TIMELINE_MAX} longest tracks of {len(timeline_tracks)}."))
    blocks.append(Heading("Contact sheet"))
    if sheet is not None:
        cv2.imwrite(str(out / "contact_sheet.png"), sheet)
        blocks.append(Picture("contact_sheet.png", "frames with a leak first (if any), then evenly spaced frames"))
    else:
        blocks.append(Paragraph("No frame to show."))
    files = ["report.html (this report, images inline)", "frames.csv (per frame)",
             "faces.csv (per face and frame)", "tracks.csv"]
    if video:
        files.insert(1, f"{video} (the anonymized frames)")
    blocks += [Heading("Files"), Paragraph("; ".join(files) + ".")]
    (out / "report.md").write_text(to_markdown(blocks))
    (out / "report.html").write_text(to_html(blocks, out, f"Evaluation of {Path(ev.bag).name}"))
    return out / "report.md"


def _label(img: np.ndarray, text: str) -> None:
    scale = max(0.4, img.shape[1] / 900.0)
    thick = max(1, round(scale * 1.5))
    org = (max(4, round(8 * scale)), max(14, round(24 * scale)))
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)


def contact_sheet(pairs: list[tuple[np.ndarray, ...]], width: int = 1280,
                  labels: list[tuple[str, ...]] | None = None) -> np.ndarray:
    """Tile rows of BGR images (by default (original, anonymized) pairs), scaled to ``width``;
    for demos and reports. ``labels``: the text of each cell, row by row."""
    if not pairs:
        raise ValueError("contact_sheet needs at least one (original, anonymized) pair")
    gap = 4
    rows = []
    for k, images in enumerate(pairs):
        texts = labels[k] if labels else ("original", "anonymized")
        cell_w = (width - gap * (len(images) - 1)) // len(images)
        cells = []
        for img, text in zip(images, texts, strict=True):
            img = as_bgr(np.asarray(img))
            h, w = img.shape[:2]
            nh = max(1, round(h * cell_w / w))
            interp = cv2.INTER_AREA if cell_w < w else cv2.INTER_LINEAR
            cell = cv2.resize(img, (cell_w, nh), interpolation=interp)
            _label(cell, text)
            cells.append(cell)
        row = np.zeros((max(c.shape[0] for c in cells), width, 3), np.uint8)
        for i, cell in enumerate(cells):
            x = i * (cell_w + gap)
            row[:cell.shape[0], x:x + cell_w] = cell
        rows.append(row)
        rows.append(np.zeros((gap, width, 3), np.uint8))
    return np.vstack(rows[:-1])
