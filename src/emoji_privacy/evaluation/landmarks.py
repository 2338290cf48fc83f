"""Landmark accuracy on 300-W style folders, with faces found by the project's own detector.

Reports, per landmark backend and folder: NME normalised by the inter-ocular distance (outer eye
corners, points 37 and 46 in the 1-based iBUG numbering) as mean, median, failure rate at 0.10 and
the area under the cumulative error distribution (CED) up to 0.08; the NME normalised by sqrt(w*h)
of the ground-truth landmarks' box, separately labelled; ms per face; how many faces the detector
missed and the box used for them instead. Lower NME is better.

    python -m emoji_privacy.evaluation landmarks --data ../shared/data/landmarks/helen_test --backend facemesh
    rosrun emoji_privacy evaluate_landmarks --data DIR [DIR ...] --backend NAME [NAME ...] --ced ced.png
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..detection import FaceDetector, box_iou, load_face_detector
from ..errors import EmojiPrivacyError
from ..image_io import IMAGE_SUFFIXES
from ..landmarks.align import LandmarkDetector, load_landmark_detector
from ..landmarks.geometry import N_POINTS, read_pts
from ..markdown import markdown_table

OUTER_EYE_CORNERS = (36, 45)
"""0-based indices of the outer eye corners (points 37 and 46 in the 1-based iBUG numbering)."""
FAILURE_THRESHOLD = 0.10
AUC_LIMIT = 0.08

# The fallback box when the detector misses a face: the ground-truth landmarks' box grown to look like a
# YuNet box (which reaches up to the hairline). Relative growth of (left, top, right, bottom) by the box's
# width/height: the median over the YuNet boxes matched on helen_train (scripts/fit_landmark_refiner.py).
FALLBACK_GROWTH = (0.0, 0.2, 0.0, 0.05)


# ----------------------------------------------------------------------------- the error measures


def landmarks_box(points: np.ndarray) -> np.ndarray:
    """(4,) x0, y0, x1, y1 of the tightest box around (K, 2) points."""
    pts = np.asarray(points, np.float64)
    return np.concatenate([pts.min(0), pts.max(0)])


def _point_errors(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, np.float64).reshape(-1, N_POINTS, 2)
    gt = np.asarray(gt, np.float64).reshape(-1, N_POINTS, 2)
    if pred.shape != gt.shape:
        raise ValueError(f"{len(pred)} predicted faces but {len(gt)} ground-truth faces")
    return np.linalg.norm(pred - gt, axis=2).mean(1), gt


def inter_ocular_nme(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per face: mean point-to-point error / distance between the outer eye corners of the ground truth."""
    err, gt = _point_errors(pred, gt)
    a, b = OUTER_EYE_CORNERS
    return err / np.linalg.norm(gt[:, a] - gt[:, b], axis=1)


def box_nme(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per face: mean point-to-point error / sqrt(w * h) of the ground-truth landmarks' box."""
    err, gt = _point_errors(pred, gt)
    wh = gt.max(1) - gt.min(1)
    return err / np.sqrt(wh[:, 0] * wh[:, 1])


def failure_rate(nme: np.ndarray, threshold: float = FAILURE_THRESHOLD) -> float:
    """Fraction of faces whose NME is above ``threshold``."""
    return float(np.mean(np.asarray(nme) > threshold))


def ced_auc(nme: np.ndarray, limit: float = AUC_LIMIT) -> float:
    """Area under the cumulative error distribution from 0 to ``limit``, divided by ``limit`` (1 = no error).

    The CED is the step function F(e) = fraction of faces with NME <= e, so the integral is exact:
    the integral from 0 to L of F equals the mean of max(0, L - nme).
    """
    return float(np.mean(np.clip(limit - np.asarray(nme, np.float64), 0.0, None)) / limit)


def ced_curve(nme: np.ndarray, limit: float = FAILURE_THRESHOLD, steps: int = 201) -> tuple[np.ndarray, np.ndarray]:
    """(thresholds, fraction of faces with NME <= threshold) for plotting."""
    x = np.linspace(0.0, limit, steps)
    srt = np.sort(np.asarray(nme, np.float64))
    return x, np.searchsorted(srt, x, side="right") / max(len(srt), 1)


def save_ced_plot(curves: dict[str, np.ndarray], path: str | os.PathLike, title: str = "") -> Path:
    """PNG of the CED of each labelled set of inter-ocular NMEs (AUC@0.08 in the legend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    for label, nme in curves.items():
        x, y = ced_curve(nme)
        ax.plot(100 * x, 100 * y, label=f"{label} (AUC@{AUC_LIMIT:g} {ced_auc(nme):.3f})")
    ax.axvline(100 * AUC_LIMIT, color="gray", lw=0.8, ls="--")
    ax.set_xlabel("inter-ocular NME (%), lower is better")
    ax.set_ylabel("faces with NME <= x (%)")
    ax.set_xlim(0, 100 * FAILURE_THRESHOLD)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title or "Cumulative error distribution")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


# ----------------------------------------------------------------------------- faces of a folder


@dataclass
class Face:
    """One annotated face and the box the landmark backend gets for it."""

    image_path: Path
    gt: np.ndarray  # (68, 2) 0-based
    box: np.ndarray  # (4,) from the detector, or the fallback box when it missed
    keypoints: np.ndarray | None  # (5, 2) from the detector; None with the fallback box
    detected: bool


def annotated_images(folder: str | os.PathLike) -> list[tuple[Path, Path]]:
    """(image, .pts) pairs of a 300-W style folder, sorted by name; a clear error if there are none."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder; give a folder of <stem>.jpg + <stem>.pts files")
    pairs = []
    for pts in sorted(root.glob("*.pts")):
        img = next((pts.with_suffix(s) for s in IMAGE_SUFFIXES if pts.with_suffix(s).is_file()), None)
        if img is not None:
            pairs.append((img, pts))
    if not pairs:
        raise FileNotFoundError(f"{root} holds no <stem>.pts with a matching <stem>.jpg/.png; "
                                "expected a 300-W style folder (68-point .pts files beside the images)")
    return pairs


def fallback_box(gt: np.ndarray) -> np.ndarray:
    """The box used when the detector misses a face: the landmarks' box grown by FALLBACK_GROWTH."""
    x0, y0, x1, y1 = landmarks_box(gt)
    w, h = x1 - x0, y1 - y0
    gl, gtop, gr, gb = FALLBACK_GROWTH
    return np.array([x0 - gl * w, y0 - gtop * h, x1 + gr * w, y1 + gb * h], np.float32)


def match_detection(gt_box: np.ndarray, boxes: np.ndarray) -> int:
    """Index of the detection of the annotated face, or -1: the best IoU with the landmarks' box if
    >= 0.3, else the smallest detection holding the box's centre and at most 4x its area."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if len(boxes) == 0:
        return -1
    gt_box = np.asarray(gt_box, np.float32)
    ious = box_iou(gt_box[None], boxes).reshape(-1)
    if ious.max() >= 0.3:
        return int(ious.argmax())
    cx, cy = (gt_box[0] + gt_box[2]) / 2, (gt_box[1] + gt_box[3]) / 2
    area = (gt_box[2] - gt_box[0]) * (gt_box[3] - gt_box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    ok = (boxes[:, 0] <= cx) & (cx <= boxes[:, 2]) & (boxes[:, 1] <= cy) & (cy <= boxes[:, 3]) & (areas <= 4 * area)
    if not ok.any():
        return -1
    return int(np.where(ok, areas, np.inf).argmin())


def detect_faces(folder: str | os.PathLike, detector: FaceDetector, progress: bool = True) -> list[Face]:
    """Every annotated face of ``folder`` with its box from ``detector`` (or the fallback box)."""
    from tqdm import tqdm

    faces = []
    pairs = annotated_images(folder)
    for img_path, pts_path in tqdm(pairs, desc=f"detect {Path(folder).name}", disable=not progress, leave=False):
        img = cv2.imread(str(img_path))
        if img is None:
            raise ValueError(f"{img_path} cannot be decoded; remove it or replace it with a valid image")
        gt = read_pts(pts_path)
        dets = detector.detect(img)
        i = match_detection(landmarks_box(gt), dets.boxes)
        if i < 0:
            faces.append(Face(img_path, gt, fallback_box(gt), None, False))
        else:
            faces.append(Face(img_path, gt, dets.boxes[i].astype(np.float32), dets.keypoints[i].astype(np.float32),
                              True))
    return faces


# ----------------------------------------------------------------------------- evaluation


@dataclass
class Result:
    """Errors of one landmark backend on one folder."""

    backend: str
    dataset: str
    nme: np.ndarray = field(default_factory=lambda: np.zeros(0))  # inter-ocular, per face
    nme_box: np.ndarray = field(default_factory=lambda: np.zeros(0))  # sqrt(w*h) of the gt box, per face
    ms: np.ndarray = field(default_factory=lambda: np.zeros(0))  # landmark wall time per face
    cpu_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))  # landmark CPU time of the calling thread
    missed: int = 0  # faces the detector missed (fallback box used)
    error: str = ""  # why the backend could not run (e.g. its weights are absent)

    @property
    def faces(self) -> int:
        return len(self.nme)

    def row(self) -> list[object]:
        if self.error:
            return [self.backend, self.dataset, "-", "-", "-", "-", "-", "-", "-", "-", "-", f"not run: {self.error}"]
        pct = f"{100 * self.missed / max(self.faces, 1):.1f}%"
        return [self.backend, self.dataset, self.faces, f"{100 * np.mean(self.nme):.2f}%",
                f"{100 * np.median(self.nme):.2f}%", f"{100 * failure_rate(self.nme):.2f}%",
                f"{ced_auc(self.nme):.3f}", f"{100 * np.mean(self.nme_box):.2f}%", f"{np.mean(self.cpu_ms):.2f}",
                f"{np.mean(self.ms):.2f}", f"{self.missed} ({pct})", ""]


HEADERS = ["backend", "set", "faces", "NME io mean", "NME io median", f"failure@{FAILURE_THRESHOLD:g}",
           f"AUC@{AUC_LIMIT:g}", "NME box (sqrt(w*h))", "ms/face CPU", "ms/face wall", "detector missed", "note"]
LEGEND = (
    "Lower NME is better (AUC: higher is better). NME io: mean point-to-point error over the 68 points divided "
    "by the distance between the outer eye corners (points 37 and 46, 1-based) of the ground truth; "
    f"failure@{FAILURE_THRESHOLD:g}: share of faces with NME io > {FAILURE_THRESHOLD:g}; AUC@{AUC_LIMIT:g}: "
    f"area under the cumulative error curve up to {AUC_LIMIT:g}, divided by {AUC_LIMIT:g}. "
    "NME box: the same error divided by sqrt(width * height) of the ground-truth landmarks' box (a different, "
    "smaller-looking normalisation; not comparable with NME io). ms/face: the landmark backend's detect() "
    "alone with one thread, as CPU time of that thread (the cost on one core, whatever else the machine runs) and "
    "as wall-clock time. Faces come from the project's detector; a face it missed gets the ground-truth "
    "landmarks' box grown by "
    f"{100 * FALLBACK_GROWTH[1]:.0f}% of its height upwards and {100 * FALLBACK_GROWTH[3]:.0f}% downwards "
    "(YuNet-like), without keypoints.")


def evaluate(landmarker: LandmarkDetector, faces: list[Face], dataset: str = "", progress: bool = True) -> Result:
    """Run ``landmarker`` on each face's box and measure its errors and time."""
    from tqdm import tqdm

    preds, ms, cpu_ms = [], [], []
    for face in tqdm(faces, desc=f"{landmarker.name} {dataset}", disable=not progress, leave=False):
        img = cv2.imread(str(face.image_path))
        kps = None if face.keypoints is None else face.keypoints[None]
        t, c = time.perf_counter(), time.thread_time()
        lm = landmarker.detect(img, face.box[None], kps)
        cpu_ms.append((time.thread_time() - c) * 1e3)
        ms.append((time.perf_counter() - t) * 1e3)
        preds.append(lm[0])
    gts = np.array([f.gt for f in faces])
    preds_arr = np.array(preds).reshape(len(faces), N_POINTS, 2)
    return Result(landmarker.name, dataset, inter_ocular_nme(preds_arr, gts), box_nme(preds_arr, gts),
                  np.array(ms), np.array(cpu_ms), sum(not f.detected for f in faces))


def single_thread() -> None:
    """Make OpenCV and torch use one thread, so ms/face is the cost on one CPU core."""
    cv2.setNumThreads(1)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def run(folders: list[Path], backends: list[str], detector_name: str = "yunet", ced_path: Path | None = None,
        limit: int = 0, progress: bool = True) -> list[Result]:
    """Evaluate each backend on each folder; backends that cannot be built get a Result with ``error``."""
    from ..config import PipelineConfig

    single_thread()
    dc = PipelineConfig().detector
    detector = load_face_detector(detector_name, score_threshold=dc.score_threshold, max_side=dc.max_side)
    landmarkers: dict[str, LandmarkDetector | str] = {}
    for name in backends:
        try:
            landmarkers[name] = load_landmark_detector(name, **({"num_threads": 1} if name == "facemesh" else {}))
        except EmojiPrivacyError as e:
            landmarkers[name] = str(e)
    results = []
    for folder in folders:
        faces = detect_faces(folder, detector, progress)
        if limit:
            faces = faces[:limit]
        for name, lmk in landmarkers.items():
            if isinstance(lmk, str):
                results.append(Result(name, folder.name, missed=sum(not f.detected for f in faces), error=lmk))
            else:
                results.append(evaluate(lmk, faces, folder.name, progress))
    if ced_path is not None:
        save_ced_plot({f"{r.backend} {r.dataset}": r.nme for r in results if not r.error}, ced_path)
    return results


def report(results: list[Result]) -> str:
    """Markdown table of ``results`` with the legend that says what each column means."""
    rows = [r.row() for r in results]
    return markdown_table(HEADERS, rows) + "\n\n" + LEGEND
