# Copyright (c) mmdysample contributors. All rights reserved.
"""DepthFormer's scale-invariant log loss (``SigLoss``)."""
import logging
from typing import Optional

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmseg.registry import MODELS
from torch import Tensor


@MODELS.register_module()
class SigLoss(nn.Module):
    """The scale-invariant log loss of DepthFormer (after AdaBins).

    With ``g = log(pred + eps) - log(gt + eps)`` over the valid pixels of
    the **whole batch** (one pool, as the Monocular-Depth-Estimation-Toolbox
    computes it; mmseg's ``SiLogLoss`` averages per image instead)::

        loss = loss_weight * sqrt(var(g) + (1 - variance_focus) * mean(g)^2)

    ``var`` is the unbiased variance (``N - 1``), as ``torch.var``'s
    default in the toolbox; ``variance_focus`` is 0.85, so the mean term
    weighs 0.15. Paper: Eigen et al. "Depth Map Prediction from a Single
    Image using a Multi-Scale Deep Network", NeurIPS 2014
    (https://arxiv.org/abs/1406.2283); DepthFormer:
    https://arxiv.org/abs/2203.14211.

    What the toolbox's formula leaves undefined is defined here, so that a
    bad batch costs nothing rather than a NaN in every weight:

    - **No valid pixel** in the batch (every crop padding, or all depths
      beyond ``max_depth``): the loss is ``0 * pred.sum()``, a zero that
      keeps the graph (the step's gradient is zero, not NaN). Images without
      a valid pixel in a batch that has some contribute nothing either
      way. Each call that meets such images logs one warning through
      mmengine's ``print_log`` naming how many images of how many had no
      valid pixel, and adds them to :attr:`num_skipped_images`.
    - **One valid pixel**: its variance is taken as 0 (``torch.var`` with
      ``N - 1`` would give NaN).
    - **Predictions <= 0** (a head without the toolbox's ``relu +
      min_depth``, or the first steps of training): ``pred`` is clamped at
      0 before ``+ eps``, so the log reads at least ``log(eps)`` and stays
      finite; where the clamp acts, the gradient is zero. The same clamp
      guards the ground truth when ``valid_mask=False``.
    - **A zero radicand** (a perfect prediction): the square root reads at
      least the smallest normal number of the dtype (``torch.finfo``), so
      its gradient is finite; float32 and float64 alike.

    Shapes: ``pred`` and ``target`` ``(N, 1, H, W)`` (any equal shapes,
    the first dimension being the images) -> a scalar.

    Args:
        valid_mask (bool): Count only pixels with ``0 < gt`` (and
            ``gt <= max_depth`` when that is set). Defaults to True.
        loss_weight (float): Weight of the loss. Defaults to 1.0.
        max_depth (float, optional): Upper bound of valid ground truth
            (with ``valid_mask``). Defaults to None: no bound.
        variance_focus (float): ``lambda`` of the loss: 1 makes it fully
            scale invariant. Defaults to 0.85 (the toolbox's 0.15 weight of
            the squared mean).
        eps (float): Added to prediction and ground truth before the log,
            as in the toolbox ("avoid grad explode"). Defaults to 1e-3.
        loss_name (str): Key of the loss in the head's loss dict; mmseg
            sums the items whose name starts with ``loss``. Defaults to
            ``'loss_depth'``, the toolbox's key.

    Raises:
        ValueError: ``eps`` is not positive, ``variance_focus`` is not in
            ``[0, 1]``, or ``max_depth`` is not positive.

    Example:
        >>> loss = SigLoss()
        >>> gt = torch.tensor([1., 2., 4., 0.]).view(1, 1, 2, 2)
        >>> pred = 2 * gt  # a constant log-ratio: only the mean term
        >>> round(loss(pred, gt).item(), 4)
        0.2683
    """

    def __init__(self,
                 valid_mask: bool = True,
                 loss_weight: float = 1.0,
                 max_depth: Optional[float] = None,
                 variance_focus: float = 0.85,
                 eps: float = 1e-3,
                 loss_name: str = 'loss_depth') -> None:
        super().__init__()
        if not eps > 0:
            raise ValueError(f'eps must be positive, got {eps!r}')
        if not 0 <= variance_focus <= 1:
            raise ValueError('variance_focus must be in [0, 1], got '
                             f'{variance_focus!r}')
        if max_depth is not None and not max_depth > 0:
            raise ValueError(
                f'max_depth must be positive or None, got {max_depth!r}')
        self.valid_mask = valid_mask
        self.loss_weight = loss_weight
        self.max_depth = max_depth
        self.variance_focus = variance_focus
        self.eps = float(eps)
        self._loss_name = loss_name
        #: Images without a valid pixel met so far (over all calls).
        self.num_skipped_images = 0

    def valid(self, target: Tensor) -> Tensor:
        """The mask of the pixels the loss reads, ``target``'s shape."""
        if not self.valid_mask:
            return torch.ones_like(target, dtype=torch.bool)
        mask = target > 0
        if self.max_depth is not None:
            mask &= target <= self.max_depth
        return mask

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """The weighted loss of a batch: a scalar, finite for any input
        (see the class docstring)."""
        if pred.shape != target.shape:
            raise ValueError('pred and target must have one shape, got '
                             f'{tuple(pred.shape)} and {tuple(target.shape)}')
        mask = self.valid(target.detach())
        # one image per entry of the first dimension (a 1-D input: one)
        per_image = mask.reshape(mask.shape[0] if mask.dim() > 1 else 1,
                                 -1).any(dim=1)
        empty = int((~per_image).sum())
        if empty:
            self.num_skipped_images += empty
            print_log(
                f'SigLoss: {empty} of {per_image.numel()} image(s) have no '
                'valid depth pixel (0 < gt'
                + ('' if self.max_depth is None else
                   f' <= max_depth={self.max_depth}') +
                '); they add nothing to the loss',
                logger='current',
                level=logging.WARNING)
        if not bool(mask.any()):
            return pred.sum() * 0.
        g = (torch.log(pred[mask].clamp(min=0) + self.eps) -
             torch.log(target[mask].clamp(min=0) + self.eps))
        variance = torch.var(g, correction=1 if g.numel() > 1 else 0)
        radicand = variance + (1 - self.variance_focus) * g.mean()**2
        tiny = torch.finfo(radicand.dtype).tiny
        return self.loss_weight * torch.sqrt(radicand.clamp(min=tiny))

    @property
    def loss_name(self) -> str:
        """The loss's key in the head's loss dict (mmseg's contract)."""
        return self._loss_name

    def extra_repr(self) -> str:
        return (f'valid_mask={self.valid_mask}, loss_weight='
                f'{self.loss_weight}, max_depth={self.max_depth}, '
                f'variance_focus={self.variance_focus}, eps={self.eps}')
