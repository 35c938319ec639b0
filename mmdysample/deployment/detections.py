# Copyright (c) mmdysample contributors. All rights reserved.
"""Whether two detectors' outputs are the same detections: an exported
model's against PyTorch's, on the same image.

The same detections above a score threshold: each one of either side
pairs with one of the other of the same label whose box is within
``box_tol`` pixels in every coordinate. A detection that finds no partner
may only be one whose score lies within ``score_tol`` of the threshold
(float32 differences move it to the other side); anything else is a
mismatch.
"""
from typing import Dict, Sequence

import numpy as np


def _as_arrays(boxes, scores, labels, side: str):
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    if not len(boxes) == len(scores) == len(labels):
        raise ValueError(
            f'{side}: boxes, scores and labels must have one entry per '
            f'detection, got {len(boxes)}, {len(scores)} and {len(labels)}')
    return boxes, scores, labels


def clip_boxes(boxes, shape) -> np.ndarray:
    """``(K, 4)`` xyxy boxes clamped into an image of ``shape`` ``(H, W,
    ...)``: x into ``[0, W]``, y into ``[0, H]``."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    height, width = shape[:2]
    bound = np.array([width, height, width, height], dtype=np.float64)
    return np.minimum(np.maximum(boxes, 0), bound)


def match_detections(reference: Sequence,
                     candidate: Sequence,
                     score_thr: float = 0.3,
                     box_tol: float = 1.0,
                     score_tol: float = 1e-3) -> Dict:
    """Pair the detections above ``score_thr`` of two outputs.

    Args:
        reference (Sequence): ``(boxes (K, 4) xyxy, scores (K,), labels
            (K,))`` of the reference (PyTorch).
        candidate (Sequence): The same for the model compared with it.
        score_thr (float): Detections scoring at least this are compared.
            Defaults to 0.3.
        box_tol (float): Largest coordinate difference, in pixels, of a
            pair. Defaults to 1.0.
        score_tol (float): An unpaired detection within this of
            ``score_thr`` is not a mismatch. Defaults to 1e-3.

    Returns:
        dict: ``compared`` (reference detections above the threshold),
        ``paired`` (those of them with a partner, so never more than
        ``compared``; a borderline one below the threshold may pair too,
        uncounted), ``max_box_diff`` (px, over the pairs; 0 when none),
        ``max_score_diff``, ``unpaired_reference`` and
        ``unpaired_candidate`` (their indices, borderline ones excluded)
        and ``same`` (True when both unpaired lists are empty and every
        pair is within ``box_tol``).
    """
    for name, value in (('score_thr', score_thr), ('box_tol', box_tol),
                        ('score_tol', score_tol)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or value < 0:
            raise ValueError(f'{name} must be a number >= 0, got {value!r}')
    ref = _as_arrays(*reference, side='reference')
    cand = _as_arrays(*candidate, side='candidate')
    # Candidates are kept down to the borderline, so that a reference
    # detection just above the threshold still finds its partner.
    low = score_thr - score_tol
    ref_keep = np.flatnonzero(ref[1] >= low)
    cand_keep = np.flatnonzero(cand[1] >= low)

    pairs = []
    free = set(cand_keep.tolist())
    # Highest-scoring first, each to its closest free box of its label.
    for i in ref_keep[np.argsort(-ref[1][ref_keep], kind='stable')]:
        same_label = [j for j in free if cand[2][j] == ref[2][i]]
        if not same_label:
            continue
        diffs = [np.abs(cand[0][j] - ref[0][i]).max() for j in same_label]
        best = int(np.argmin(diffs))
        if diffs[best] <= box_tol:
            j = same_label[best]
            free.discard(j)
            pairs.append((int(i), j, float(diffs[best])))

    paired_ref = {i for i, _, _ in pairs}
    borderline_ref = np.abs(ref[1] - score_thr) <= score_tol
    borderline_cand = np.abs(cand[1] - score_thr) <= score_tol
    unpaired_ref = [
        int(i) for i in ref_keep
        if i not in paired_ref and not borderline_ref[i]
        and ref[1][i] >= score_thr
    ]
    unpaired_cand = [
        int(j) for j in sorted(free)
        if not borderline_cand[j] and cand[1][j] >= score_thr
    ]
    return dict(
        compared=int((ref[1] >= score_thr).sum()),
        paired=sum(1 for i, _, _ in pairs if ref[1][i] >= score_thr),
        max_box_diff=max((d for _, _, d in pairs), default=0.0),
        max_score_diff=max((abs(ref[1][i] - cand[1][j])
                            for i, j, _ in pairs), default=0.0),
        unpaired_reference=unpaired_ref,
        unpaired_candidate=unpaired_cand,
        same=not unpaired_ref and not unpaired_cand)
