# Copyright (c) mmdysample contributors. All rights reserved.
"""Hooks for the mmengine Runner."""
from typing import Optional

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Carry torch's random state through checkpoints so resuming is exact.

    mmengine re-seeds every generator when it resumes and then advances the
    dataloader past the iterations already trained. Data transforms draw
    from numpy / ``random``, which that replay brings back to where they
    were; the model (proposal sampling, dropout, drop path) draws from
    torch, which the replay does not touch. This hook stores torch's CPU and
    CUDA states in each checkpoint and restores them on resume, so that
    ``2 + 2`` iterations reproduce ``4``.
    """

    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self._pending: Optional[dict] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        state = dict(torch=torch.get_rng_state())
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state['cuda'] = torch.cuda.get_rng_state_all()
        checkpoint['rng_state'] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        # Runner.resume() re-seeds after loading the checkpoint; restore
        # when training actually starts.
        self._pending = checkpoint.get('rng_state')

    def before_train(self, runner) -> None:
        if self._pending is None:
            return
        torch.set_rng_state(self._pending['torch'])
        cuda = self._pending.get('cuda')
        if cuda is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(cuda)
        self._pending = None
