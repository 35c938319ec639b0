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


@HOOKS.register_module()
class CheckpointFitHook(Hook):
    """Refuse, before any weight is loaded, a checkpoint that does not fit.

    mmengine's ``Runner.load_checkpoint`` (the path of ``load_from``) reads
    the file, calls ``after_load_checkpoint`` and only then loads it
    non-strictly into the model; ``Runner.test`` does all this before the
    first batch. This hook checks the checkpoint there with
    :func:`~mmdysample.utils.checkpoint_fit.check_checkpoint_fit`, so the
    file is read once and a checkpoint of another model stops the run
    before anything is evaluated. ``tools/test.py`` adds it; training's
    ``load_from`` keeps mmengine's lenient behaviour.

    Args:
        allow_partial (bool): Only warn when the checkpoint does not fit.
            Defaults to False.
        source (str, optional): The checkpoint's name in messages.
            Defaults to None (``'checkpoint'``).
    """

    priority = 'VERY_HIGH'

    def __init__(self,
                 allow_partial: bool = False,
                 source: Optional[str] = None) -> None:
        if not isinstance(allow_partial, bool):
            raise TypeError(
                f'allow_partial must be a bool, got {allow_partial!r}')
        self.allow_partial = allow_partial
        self.source = source

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        from mmengine.model import is_model_wrapper

        from mmdysample.utils.checkpoint_fit import check_checkpoint_fit
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        check_checkpoint_fit(
            model, checkpoint, self.allow_partial, source=self.source)
