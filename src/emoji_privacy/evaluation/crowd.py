"""Crowd scenes: real 300-W faces composed into audiences as a robot's camera sees them, with ground truth.

Each person is a real face cut out with its own surroundings (``synthetic.cut_face``) on a plain torso. People
stand at depths from the back of a hall (faces 20-40 px) to the front (a sixth of the frame's width), nearer
ones painted over farther ones, so heads and shoulders hide 10-60% of some faces as in a real audience. A
quarter of the faces are 300-W's large-pose ones (head turned by more than half, ``landmarks.geometry.head_turn``),
and half of all faces are mirrored. People sway and some walk sideways; the camera pans and zooms slowly.
``closeup=True`` puts one face in front of the camera, its box 80% of the frame's height, with the crowd
behind it. The same scene is seen in three lightings (``LIGHTINGS``): bright, dim, and dark with sensor
noise (``synthetic.LowLightCamera``, the dim hall of bench_bags).

Ground truth per frame (``CrowdFrame``): each person's full face box, the box of the part of it left
visible by the people in front (``visible``), the share of its central ellipse they hide (``occluded``),
its identity and head turn. A face hidden by more than ``HIDDEN_SHARE`` is no longer a face anyone could
recognise, and is not counted.

``write_clip`` saves a clip as an H.264 MP4 with a JSON of its ground truth, ``read_truth`` reads that back,
and ``crowd_clip`` keeps such clips in a cache folder, so benchmarks make each one once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..atomic import atomic_output
from .synthetic import (
    FEATHER,
    PASTE_EXTENT,
    Face,
    LowLightCamera,
    _paste,
    light_map,
    load_faces,
    low_light,
    texture_background,
)

LIGHTINGS = ("bright", "dim", "dark")
"""bright: as lit; dim: an evenly dim room (mean level ~60); dark: a dim hall through a small noisy camera
(mean level ~25-30, faces at 10-40, shot and read noise, JPEG), the low-light variant of bench_bags."""

CAMERAS: dict[str, LowLightCamera | None] = {
    "bright": None,
    "dim": LowLightCamera(exposure=0.35, gamma=1.1, black=4.0, full_well=6000.0, read_noise=2.0, chroma=0.3),
    "dark": LowLightCamera(),
}

FRAME_SIZES = ((640, 360), (640, 480), (1280, 720))
FACE_COUNTS = (5, 10, 20)

FAR_WIDTH = (20.0, 40.0)
"""Face box widths (px) of the back row, at every frame size."""
NEAR_SHARE = 1 / 6
"""Face box width of the front row, as a share of the frame's width."""
CLOSEUP_HEIGHT = 0.8
"""The close-up face's box height as a share of the frame's height."""
PROFILE_SHARE = 0.25
"""Share of faces drawn from 300-W's large-pose faces."""
PROFILE_TURN = 0.45
"""|head_turn| from which a 300-W face counts as large-pose."""
WALKER_SHARE = 0.3
"""Share of people walking sideways (the others sway on the spot)."""
HIDDEN_SHARE = 0.6
"""A face whose central ellipse is hidden beyond this share is not counted as a face in that frame."""
MAX_START_OCCLUSION = 0.5
"""At the first frame no counted face is hidden beyond this (people are re-placed until they are)."""
PAN, ZOOM = 0.04, 0.08
"""Camera motion: a pan of up to this share of the frame's width (and half that in tilt), and a zoom to 1 + ZOOM."""
CLIP_FPS = 30


@dataclass
class _Person:
    face: Face
    depth: float  # 0 = back row, 1 = front row (2: the close-up)
    width: float  # face box width in world pixels
    x: float  # face box centre in world pixels, at t = 0
    y: float
    speed: float  # walking speed, world px per second (0: stands)
    sway: tuple[float, float, float, float]  # amplitude x, y (px), period (s), phase
    torso: tuple[float, float, float]  # BGR


@dataclass
class CrowdFrame:
    """The ground truth of one frame: rows are the people in the frame whose face is not hidden."""

    boxes: np.ndarray  # (N, 4) full face boxes, frame pixels (may reach outside the frame)
    visible: np.ndarray  # (N, 4) boxes of the faces' visible parts
    occluded: np.ndarray  # (N,) share of each face's central ellipse hidden by nearer people
    ids: np.ndarray  # (N,) person identities, stable over the clip
    turn: np.ndarray  # (N,) head turn of each face (landmarks.geometry.head_turn; mirrored faces flipped)

    def to_json(self) -> dict[str, list]:
        return {"boxes": np.round(self.boxes, 1).tolist(), "visible": np.round(self.visible, 1).tolist(),
                "occluded": np.round(self.occluded, 3).tolist(), "ids": self.ids.tolist(),
                "turn": np.round(self.turn, 3).tolist()}

    def select(self, keep: np.ndarray) -> CrowdFrame:
        """The rows ``keep`` (a mask or indices)."""
        return CrowdFrame(self.boxes[keep], self.visible[keep], self.occluded[keep], self.ids[keep], self.turn[keep])

    @staticmethod
    def empty() -> CrowdFrame:
        z = np.zeros((0, 4), np.float32)
        return CrowdFrame(z, z.copy(), np.zeros(0, np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32))

    @staticmethod
    def from_json(d: dict[str, list]) -> CrowdFrame:
        return CrowdFrame(np.array(d["boxes"], np.float32).reshape(-1, 4),
                          np.array(d["visible"], np.float32).reshape(-1, 4), np.array(d["occluded"], np.float32),
                          np.array(d["ids"], np.int64), np.array(d["turn"], np.float32))


@dataclass(frozen=True)
class CrowdSpec:
    """Which scene: its frame size, faces, lighting, close-up and length; ``name`` is its cache key."""

    width: int = 640
    height: int = 360
    faces: int = 10
    lighting: str = "dark"
    closeup: bool = False
    frames: int = 150
    seed: int = 0
    shown: int = 0  # only this many of the ``faces`` people, spread over the depths (0: all): the same scene and
    # background with fewer faces, to measure what one more face costs
    faceless: bool = False  # the same people drawn without their heads (torsos only) and no face in the truth: a
    # clip where every face the pipeline lists is a false one (bench_tracks)
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def name(self) -> str:
        kind = "closeup" if self.closeup else f"{self.faces}faces"
        part = f"_shown{self.shown}" if self.shown else ""
        part += "_faceless" if self.faceless else ""
        return f"crowd_{kind}{part}_{self.lighting}_{self.width}x{self.height}_{self.frames}f_s{self.seed}"

    @property
    def label(self) -> str:
        """Short words for a table row: '10 faces, dark, 640x360'."""
        kind = f"close-up + {self.faces}" if self.closeup else f"{self.faces} faces"
        if self.shown:
            kind = f"{self.shown} of {self.faces} faces"
        if self.faceless:
            kind = f"{self.faces} people without faces" if self.faces else "no people"
        return f"{kind}, {self.lighting}, {self.width}x{self.height}"


def _mirror(face: Face) -> Face:
    w = face.image.shape[1]
    box = np.array([w - face.box[2], face.box[1], w - face.box[0], face.box[3]], np.float32)
    return Face(np.ascontiguousarray(face.image[:, ::-1]), box, face.name + "/mirrored", -face.turn)


def _smooth(t: np.ndarray) -> np.ndarray:
    return t * t * (3 - 2 * t)


class CrowdScene:
    """One crowd: its people, their motion and the camera's, in one lighting; ``render(i)`` draws frame ``i``.

    The people and the camera's path depend only on (frame size, face count, close-up, seed), so the three
    lightings of a scene show the same people in the same places; the lighting changes only the camera."""

    def __init__(self, faces: Sequence[Face], spec: CrowdSpec) -> None:
        if not faces:
            raise ValueError("a crowd needs at least one face")
        if spec.lighting not in LIGHTINGS:
            raise ValueError(f"lighting must be one of {', '.join(LIGHTINGS)}, got {spec.lighting!r}")
        self.spec = spec
        w, h = spec.width, spec.height
        rng = np.random.default_rng([spec.seed, spec.width, spec.height, spec.faces, int(spec.closeup)])
        self.noise_rng = np.random.default_rng([spec.seed, spec.width, spec.height, spec.faces, int(spec.closeup),
                                                LIGHTINGS.index(spec.lighting)])
        # the world is larger than the frame by the camera's pan and tilt, so a panned frame never leaves it
        self.world_size = (int(math.ceil(w * (1 + 2 * PAN + 0.02))), int(math.ceil(h * (1 + PAN + 0.02))))
        self.background = (texture_background(*self.world_size, rng) * 0.8).astype(np.uint8)
        profiles = [f for f in faces if abs(f.turn) >= PROFILE_TURN]
        frontal = [f for f in faces if abs(f.turn) < PROFILE_TURN] or list(faces)
        self.people = self._place(rng, frontal, profiles)
        if 0 < spec.shown < len(self.people):
            keep = np.unique(np.round(np.linspace(0, len(self.people) - 1, spec.shown)).astype(int))
            self.people = [self.people[int(i)] for i in keep]
        self.camera = CAMERAS[spec.lighting]
        self.light = None
        if self.camera is not None:
            # the spotlight away from every face, so the faces stay dim
            cand = rng.uniform(0.05, 0.95, (64, 2))
            at = np.array([[p.x / self.world_size[0], p.y / self.world_size[1]] for p in self.people]).reshape(-1, 2)
            d = np.linalg.norm((cand[:, None] - at[None]) * [w, h], axis=2).min(axis=1) if len(at) else cand[:, 0]
            spot = cand[int(np.argmax(d))]
            gain = 40.0 if spec.lighting == "dark" else 4.0
            self.light = light_map(w, h, (float(spot[0]), float(spot[1])), spot_gain=gain, vignette=0.5)

    # ------------------------------------------------------------------ people

    def _person(self, rng: np.random.Generator, face: Face, depth: float) -> _Person:
        spec, (ww, wh) = self.spec, self.world_size
        far = float(rng.uniform(*FAR_WIDTH))
        near = max(far * 1.5, NEAR_SHARE * spec.width)
        width = far + (near - far) * depth ** 2
        if rng.random() < 0.5:
            face = _mirror(face)
        # farther people stand higher in the frame (a raked audience), with some spread
        y = wh * (0.22 + 0.45 * depth) + rng.normal(0, 0.04 * wh)
        y = float(np.clip(y, 0.6 * width * face.aspect + 4, wh - 0.5 * width * face.aspect - 4))
        x = float(rng.uniform(0.6 * width, ww - 0.6 * width))
        walking = rng.random() < WALKER_SHARE
        speed = float(rng.choice([-1, 1]) * rng.uniform(0.4, 1.2) * width) if walking else 0.0
        sway = (float(rng.uniform(0.03, 0.12) * width), float(rng.uniform(0.02, 0.06) * width),
                float(rng.uniform(1.5, 4.0)), float(rng.uniform(0, 2 * np.pi)))
        torso = tuple(float(v) for v in rng.uniform(25, 200, 3))
        return _Person(face, depth, width, x, y, speed, sway, torso)

    def _place(self, rng: np.random.Generator, frontal: list[Face], profiles: list[Face]) -> list[_Person]:
        n, spec = self.spec.faces, self.spec
        people: list[_Person] = []
        depths = np.sort(rng.uniform(0, 1, n)) if n else np.zeros(0)
        for d in depths:
            pool = profiles if profiles and rng.random() < PROFILE_SHARE else frontal
            people.append(self._person(rng, pool[int(rng.integers(len(pool)))], float(d)))
        if spec.closeup:
            face = frontal[int(rng.integers(len(frontal)))]
            width = CLOSEUP_HEIGHT * spec.height / face.aspect
            (ww, wh) = self.world_size
            x = ww * float(rng.choice([0.33, 0.67]))
            people.append(_Person(face, 2.0, width, x, wh / 2, 0.0,
                                  (0.03 * width, 0.015 * width, 3.0, float(rng.uniform(0, 2 * np.pi))),
                                  tuple(float(v) for v in rng.uniform(25, 200, 3))))
        # re-place the people hidden too much at the first frame (the close-up stays where it is)
        for _ in range(30):
            truth = self._truth(people, 0.0, with_hidden=True)
            bad = [int(i) for i, s in zip(truth.ids, truth.occluded, strict=True)
                   if s > MAX_START_OCCLUSION and people[int(i)].depth <= 1.0]
            if not bad:
                break
            for i in bad:
                p = people[i]
                p.x = float(rng.uniform(0.6 * p.width, self.world_size[0] - 0.6 * p.width))
        return people

    # ------------------------------------------------------------------ motion and geometry

    def _camera(self, t: float) -> tuple[float, float, float]:
        """Zoom and the world point at the frame's centre, at time t (s)."""
        ww, wh = self.world_size
        period = max(self.spec.frames / CLIP_FPS, 1.0)
        phase = 2 * math.pi * t / period
        zoom = 1 + ZOOM * (1 - math.cos(phase)) / 2
        cx = ww / 2 + PAN * self.spec.width * math.sin(phase)
        cy = wh / 2 + 0.5 * PAN * self.spec.height * math.sin(2 * phase)
        return zoom, cx, cy

    def _where(self, p: _Person, t: float) -> tuple[float, float]:
        """A person's face centre in the world at time t (walkers turn at the world's edges)."""
        ax, ay, period, phase = p.sway
        x = p.x
        if p.speed:
            lo, hi = 0.6 * p.width, self.world_size[0] - 0.6 * p.width
            span = max(hi - lo, 1.0)
            u = (p.x - lo + p.speed * t) % (2 * span)
            x = lo + (u if u <= span else 2 * span - u)
        s = 2 * math.pi * t / period + phase
        return x + ax * math.sin(s), p.y + ay * math.sin(2 * s)

    def _layout(self, people: Sequence[_Person], t: float) -> list[tuple[_Person, float, float, float]]:
        """(person, face centre x, y, face box width) in frame pixels, back to front."""
        zoom, cx, cy = self._camera(t)
        w, h = self.spec.width, self.spec.height
        out = []
        for p in sorted(people, key=lambda q: q.depth):
            x, y = self._where(p, t)
            out.append((p, (x - cx) * zoom + w / 2, (y - cy) * zoom + h / 2, p.width * zoom))
        return out

    @staticmethod
    def _torso(x: float, y: float, width: float, aspect: float) -> tuple[tuple[float, float], tuple[float, float]]:
        """Centre and semi-axes of a person's shoulders and body below the face."""
        return (x, y + aspect * width * 0.5 + 1.3 * width), (1.05 * width, 1.4 * width)

    def _cover(self, xs: np.ndarray, ys: np.ndarray, p: _Person, x: float, y: float, width: float) -> np.ndarray:
        """How opaque a person's paint is at the points (xs, ys): the pasted head's soft ellipse or the torso."""
        aspect = p.face.aspect
        r = np.sqrt(((xs - x) / (PASTE_EXTENT * width)) ** 2 + ((ys - y) / (PASTE_EXTENT * width * aspect)) ** 2)
        head = _smooth(np.clip((1.0 - r) / FEATHER, 0.0, 1.0))
        (tx, ty), (ax, ay) = self._torso(x, y, width, aspect)
        body = (((xs - tx) / ax) ** 2 + ((ys - ty) / ay) ** 2 <= 1.0).astype(np.float32)
        return np.maximum(head, body)

    def _truth(self, people: Sequence[_Person], t: float, with_hidden: bool = False) -> CrowdFrame:
        layout = self._layout(people, t)
        w, h = self.spec.width, self.spec.height
        rows = []
        ids = {id(p): i for i, p in enumerate(people)}
        for k, (p, x, y, width) in enumerate(layout):
            bw, bh = width, width * p.face.aspect
            box = np.array([x - bw / 2, y - bh / 2, x + bw / 2, y + bh / 2], np.float32)
            if box[2] <= 0 or box[0] >= w or box[3] <= 0 or box[1] >= h:
                continue
            n = 24
            gx = box[0] + (np.arange(n) + 0.5) * bw / n
            gy = box[1] + (np.arange(n) + 0.5) * bh / n
            xs, ys = np.meshgrid(gx, gy)
            hidden = np.zeros_like(xs)
            for q, qx, qy, qw in layout[k + 1:]:  # the people painted after this one
                hidden = 1 - (1 - hidden) * (1 - self._cover(xs, ys, q, qx, qy, qw))
            outside = (xs < 0) | (xs >= w) | (ys < 0) | (ys >= h)
            seen = (hidden < 0.5) & ~outside
            ellipse = ((xs - x) / (bw / 2)) ** 2 + ((ys - y) / (bh / 2)) ** 2 <= 0.5  # visible_share's middle
            occluded = 1.0 - float((seen & ellipse).sum()) / max(int(ellipse.sum()), 1)
            if not seen.any():
                occluded = 1.0
            if occluded > HIDDEN_SHARE and not with_hidden:
                continue
            cols, rws = np.nonzero(seen.any(axis=0))[0], np.nonzero(seen.any(axis=1))[0]
            vis = (np.array([gx[cols[0]] - bw / n / 2, gy[rws[0]] - bh / n / 2, gx[cols[-1]] + bw / n / 2,
                             gy[rws[-1]] + bh / n / 2], np.float32) if len(cols) else box.copy())
            rows.append((box, vis, occluded, ids[id(p)], p.face.turn))
        if not rows:
            return CrowdFrame.empty()
        return CrowdFrame(np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows]),
                          np.array([r[2] for r in rows], np.float32), np.array([r[3] for r in rows], np.int64),
                          np.array([r[4] for r in rows], np.float32))

    # ------------------------------------------------------------------ drawing

    def render(self, index: int) -> tuple[np.ndarray, CrowdFrame]:
        """Frame ``index`` (BGR uint8, fresh sensor noise) and its ground truth."""
        t = index / CLIP_FPS
        w, h = self.spec.width, self.spec.height
        zoom, cx, cy = self._camera(t)
        m = np.array([[zoom, 0, w / 2 - zoom * cx], [0, zoom, h / 2 - zoom * cy]], np.float64)
        canvas = cv2.warpAffine(self.background, m, (w, h), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT).astype(np.float32)
        for p, x, y, width in self._layout(self.people, t):
            (tx, ty), (ax, ay) = self._torso(x, y, width, p.face.aspect)
            if ty - ay < h and tx + ax > 0 and tx - ax < w:
                cv2.ellipse(canvas, (round(tx * 4), round(ty * 4)), (round(ax * 4), round(ay * 4)), 0, 0, 360,
                            p.torso, -1, cv2.LINE_AA, 2)
            if x + width > 0 and x - width < w and y - width * 2 < h and y + width * 2 > 0 and not self.spec.faceless:
                _paste(canvas, p.face, width, x, y)
        frame = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
        if self.camera is not None:
            frame = low_light(frame, self.light, self.camera, self.noise_rng)
        else:
            ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
            frame = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else frame
        return frame, self._truth(self.people, t) if not self.spec.faceless else CrowdFrame.empty()

    def all_faces(self, index: int) -> CrowdFrame:
        """Every face in frame ``index``, those hidden beyond HIDDEN_SHARE too (``render``'s truth leaves them out):
        a detection of such a face is of a real person, neither a true face nor a false one (bench_tracks)."""
        if self.spec.faceless:
            return CrowdFrame.empty()
        return self._truth(self.people, index / CLIP_FPS, with_hidden=True)

    def frames(self) -> Iterator[tuple[np.ndarray, CrowdFrame]]:
        for i in range(self.spec.frames):
            yield self.render(i)


def crowd_faces(root: str | Path | None = None) -> list[Face]:
    """The evaluation faces of 300-W (helen_test and afw), at most 256 px wide: the people of every crowd."""
    return load_faces(max_width=256, root=root)


def write_clip(scene: CrowdScene, path: Path) -> Path:
    """The scene as an H.264 MP4 at 30 fps (near-lossless, CRF 12) and its ground truth beside it
    (``<path>.json``: the spec and, per frame, the CrowdFrame's fields); both written atomically."""
    import av

    truth = []
    path = Path(path)
    with atomic_output(path) as tmp:
        with av.open(str(tmp), "w", format="mp4") as c:
            v = c.add_stream("libx264", rate=CLIP_FPS, options={"crf": "12", "preset": "veryfast"})
            v.width, v.height, v.pix_fmt = scene.spec.width, scene.spec.height, "yuv420p"
            for frame, gt in scene.frames():
                c.mux(v.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
                truth.append(gt.to_json())
            c.mux(v.encode(None))
    spec = {k: getattr(scene.spec, k) for k in ("width", "height", "faces", "lighting", "closeup", "frames", "seed",
                                                 "shown", "faceless")}
    with atomic_output(truth_path(path)) as tmp:
        tmp.write_text(json.dumps({"spec": spec, "fps": CLIP_FPS, "frames": truth}))
    return path


def truth_path(clip: Path) -> Path:
    return Path(str(clip) + ".json")


def read_truth(clip: Path) -> list[CrowdFrame]:
    """The ground truth ``write_clip`` saved beside ``clip``, one CrowdFrame per frame."""
    data = json.loads(truth_path(clip).read_text())
    return [CrowdFrame.from_json(d) for d in data["frames"]]


def crowd_clip(spec: CrowdSpec, folder: Path, faces: Sequence[Face] | None = None) -> Path:
    """The clip of ``spec`` in ``folder`` (made once, then reused: its name is the spec)."""
    path = Path(folder) / f"{spec.name}.mp4"
    if not (path.is_file() and truth_path(path).is_file()):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_clip(CrowdScene(faces if faces is not None else crowd_faces(), spec), path)
    return path
