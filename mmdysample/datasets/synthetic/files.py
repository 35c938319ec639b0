# Copyright (c) mmdysample contributors. All rights reserved.
"""Deterministic writers of the image, label and JSON files."""
import json
from typing import List, Optional

import cv2
import numpy as np

_JPEG_QUALITY = 95


def _write_rgb(path: str, rgb: np.ndarray) -> None:
    """Write an RGB image with OpenCV (JPEG or PNG from the extension)."""
    params: List[int] = []
    if path.endswith('.jpg'):
        params = [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY]
    if not cv2.imwrite(path, np.ascontiguousarray(rgb[..., ::-1]), params):
        raise OSError(f'failed to write {path}')


def _write_gray(path: str, img: np.ndarray) -> None:
    """Write a single channel PNG, 8 or 16 bits as ``img``'s dtype."""
    if not cv2.imwrite(path, img):
        raise OSError(f'failed to write {path}')


def _dump_json(path: str, obj: dict, indent: Optional[int] = None) -> None:
    """Write JSON deterministically."""
    separators = (',', ':') if indent is None else (',', ': ')
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(obj, f, indent=indent, separators=separators)
        f.write('\n')
