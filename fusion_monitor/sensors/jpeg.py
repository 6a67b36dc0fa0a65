"""JPEG encoding of RGB frames (the simulator, the real-sample sequences and fault injection share it)."""

from __future__ import annotations

import io

import numpy as np


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    """(H, W, 3) uint8 RGB -> JPEG bytes at ``quality`` (1..95)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="JPEG", quality=int(quality))
    return buf.getvalue()
