"""MP4 encoding and decoding through the ffmpeg binary that imageio-ffmpeg ships.

H.264 in yuv420p plays everywhere (browsers, QuickTime, VLC) but needs even
frame sizes, so odd sizes are padded by one edge pixel row/column rather than
resampled: the picture stays pixel-aligned with the buffers.
"""

from __future__ import annotations

import os

import numpy as np


def write_mp4(path: str, frames: np.ndarray, fps: float, crf: int = 18) -> None:
    """Encode (T, H, W, 3) uint8 sRGB frames as H.264 MP4 at `fps` frames per second."""
    import imageio_ffmpeg

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"write_mp4 needs (T, H, W, 3) uint8 frames, got {frames.shape} {frames.dtype}")
    t, h, w, _ = frames.shape
    pad_h, pad_w = h % 2, w % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    writer = imageio_ffmpeg.write_frames(
        path,
        (w + pad_w, h + pad_h),
        fps=float(fps),
        codec="libx264",
        pix_fmt_out="yuv420p",
        quality=None,
        macro_block_size=1,
        ffmpeg_log_level="error",
        # -movflags +faststart puts the index first so players start at once;
        # a fixed -threads keeps encoding predictable on small machines.
        output_params=["-crf", str(crf), "-preset", "veryfast", "-movflags", "+faststart", "-threads", "1"],
    )
    writer.send(None)
    try:
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
    finally:
        writer.close()
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        raise RuntimeError(f"ffmpeg wrote no video to {path}")


def read_mp4(path: str) -> tuple[np.ndarray, float]:
    """Decode an MP4 into (T, H, W, 3) uint8 frames and its frame rate."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(path)
    meta = reader.__next__()
    w, h = meta["size"]
    frames = [np.frombuffer(buf, dtype=np.uint8).reshape(h, w, 3) for buf in reader]
    return np.stack(frames), float(meta["fps"])


def mp4_bytes(frames: np.ndarray, fps: float, crf: int = 18) -> bytes:
    """The MP4 of `frames` as bytes (encoded through a temporary file: ffmpeg's MP4 muxer needs to seek)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="hybrid-mp4-") as tmp:
        path = os.path.join(tmp, "clip.mp4")
        write_mp4(path, frames, fps, crf=crf)
        with open(path, "rb") as fh:
            return fh.read()
