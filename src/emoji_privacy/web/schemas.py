"""What the website's API answers: the response models, shared OpenAPI fragments, and FaceResult -> FaceOut."""

from __future__ import annotations

from typing import Literal

import numpy as np
from fastapi import Query
from pydantic import BaseModel, Field

from .. import EMOTIONS
from ..pipeline import FaceResult


class FaceOut(BaseModel):
    """One face of the returned image (coordinates in the returned image's pixels)."""

    track_id: int
    box: list[float] = Field(description="x0, y0, x1, y1 of the detected face")
    score: float = Field(description="detection confidence")
    emotion: str = Field(description=f"one of {', '.join(EMOTIONS)}, or unknown (no reliable reading yet)")
    confidence: float = Field(description="probability of the shown emotion")
    probabilities: dict[str, float]
    roll_deg: float = Field(description="head roll, counter-clockwise on screen")
    yaw_deg: float | None = Field(None, description="head yaw: > 0 the person turns to their left (nose to the image "
                                                    "right); 0 = facing the camera; null: unknown")
    pitch_deg: float | None = Field(None, description="head pitch: > 0 the person looks up; null: unknown")
    reading: str = Field("read", description="read: the emotion was read reliably; else why this face's reading "
                                             "was ignored (small, turned, faint, uncertain; docs/emotion.md)")


class AnonymizeResult(BaseModel):
    source: str
    width: int = Field(description="of the returned image: the anonymized image scaled down to max_side")
    height: int
    faces: list[FaceOut]
    processing_ms: float
    image_data_url: str = Field(description="the anonymized image as a data: URL (JPEG)")


class DemoInfo(BaseModel):
    name: str
    title: str
    credit: str


class UrlRequest(BaseModel):
    url: str = Field(description="http(s) address of a JPEG, PNG or WebP image", examples=["https://example.org/a.jpg"])


class ErrorOut(BaseModel):
    detail: str


class RosStatus(BaseModel):
    enabled: bool
    streaming: bool = False
    subscribed: bool = False
    master_uri: str = ""
    image_topic: str = ""
    faces_topic: str = ""
    frames: int = 0
    last_frame_age_s: float | None = None
    message: str


class RosFaces(BaseModel):
    stamp: float | None
    faces: list[FaceOut]


class VideoClipOut(BaseModel):
    """What the uploaded clip's container header says."""

    width: int
    height: int
    seconds: float | None = Field(description="duration; null: the header does not say")
    fps: float | None
    frames: int = Field(description="0: the header does not say")
    audio: bool
    video_codec: str


class VideoSummaryOut(BaseModel):
    """The anonymized clip (video.mp4): H.264, the upload's size (odd sides padded to even), frame rate and audio."""

    frames: int
    fps: float
    width: int
    height: int
    audio: bool = Field(description="the upload's audio track is in the result")
    processing_s: float
    failed_frames: int = Field(description="frames the pipeline failed on, masked whole")
    bytes: int


class VideoTrackOut(BaseModel):
    """One face track over the clip (from faces.jsonl): when it is seen and the emotions shown."""

    track_id: int
    first_s: float
    last_s: float
    frames: int = Field(description="frames the face was detected in")
    held_frames: int = Field(description="frames it was covered at its predicted place while not detected")
    emotion: str = Field(description="the emotion shown most often")
    emotions: dict[str, int] = Field(description="frames per emotion shown")
    changes: int = Field(description="changes of the shown emotion")


class VideoJobOut(BaseModel):
    id: str = Field(description="the job's id: the only key to its result (keep it private)")
    state: Literal["uploading", "queued", "processing", "done", "failed", "expired"]
    position: int | None = Field(None, description="while queued: 1 = the next clip to be processed")
    processing: int = Field(description="clips being processed now on this server (0 or 1)")
    waiting: int = Field(description="clips uploading or waiting on this server")
    frames_done: int = 0
    frames_total: int = Field(0, description="0: not known yet")
    clip: VideoClipOut | None = None
    summary: VideoSummaryOut | None = None
    tracks: list[VideoTrackOut] = Field([], description="the tracks seen longest (at most video_jobs.TOP_TRACKS), "
                                        "in order of appearance; confirmed tracks only (pipeline.listed_faces)")
    track_count: int = Field(0, description="face tracks in the clip, those summed up in other_tracks included")
    other_tracks: int = Field(0, description="the shorter tracks not in tracks")
    other_frames: int = Field(0, description="frames in which those shorter tracks were detected")
    message: str = Field("", description="why it failed or was deleted")
    video_url: str | None = Field(None, description="the anonymized MP4 (HTTP Range requests work)")
    faces_url: str | None = Field(None, description="per-frame faces as JSON lines")
    expires_in_s: float | None = Field(None, description="seconds until the result is deleted")


class VideoInfo(BaseModel):
    max_video_bytes: int
    max_video_seconds: float
    max_video_pixels: int
    max_video_waiting: int
    fetched_grace_s: float
    result_timeout_s: float
    processing: int
    waiting: int


ERRORS = {s: {"model": ErrorOut} for s in (400, 403, 408, 413, 415, 422, 500, 502, 503, 504)}
VIDEO_ERRORS = {s: {"model": ErrorOut} for s in (400, 404, 408, 409, 410, 413, 415, 422, 503)}
IMAGE_BODY = {"requestBody": {"required": True, "description": "the image file itself (not a form)", "content": {
    t: {"schema": {"type": "string", "format": "binary"}} for t in ("image/jpeg", "image/png", "image/webp")}}}
VIDEO_BODY = {"requestBody": {"required": True, "description": "the video file itself (not a form)", "content": {
    t: {"schema": {"type": "string", "format": "binary"}} for t in ("video/mp4", "video/quicktime", "video/x-matroska",
                                                                      "video/webm", "video/x-msvideo")}}}
ResultFormat = Literal["json", "jpeg", "png"]
FORMAT_QUERY = Query("json", description="json: faces and the image as a data URL; jpeg/png: the image alone")


def face_out(f: FaceResult) -> FaceOut:
    return FaceOut(track_id=f.track_id, box=[round(float(v), 1) for v in f.box], score=round(f.score, 4),
                   emotion=f.emotion, confidence=round(f.confidence, 4),
                   probabilities={e: round(float(p), 4) for e, p in zip(EMOTIONS, f.probabilities, strict=False)},
                   roll_deg=round(f.roll_deg, 1), yaw_deg=_deg(f.yaw_deg), pitch_deg=_deg(f.pitch_deg),
                   reading=f.reading)


def _deg(v: float) -> float | None:
    """An angle for JSON: rounded, None when unknown (NaN is not JSON)."""
    return round(float(v), 1) if np.isfinite(v) else None
