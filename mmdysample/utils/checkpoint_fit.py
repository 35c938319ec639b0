# Copyright (c) mmdysample contributors. All rights reserved.
"""Refuse a checkpoint that does not fit the model it is loaded into.

mmengine loads checkpoints non-strictly: a checkpoint of another model logs
"The model and loaded state dict do not match exactly" and the model goes on
with the weights it was built with (a Faster R-CNN checkpoint given to a
SegFormer config evaluated to "mIoU: 7.05"). The tools that take a
checkpoint (``tools/test.py``, export, offset visualisation) check the fit
first with :func:`check_checkpoint_fit`:

- a model parameter or buffer the checkpoint lacks, or a tensor whose shape
  differs, is an error naming the first keys;
- a key the model lacks is a warning listing the keys, and an error when it
  belongs to an upsampler (its weights would be silently dropped);
- ``allow_partial=True`` (``--allow-partial-checkpoint``) turns the errors
  into warnings: mmengine's lenient behaviour.

Training's ``load_from`` keeps mmengine's behaviour (fine-tuning from a
backbone checkpoint is normal); the tools opt in.
"""
import logging
import re
from collections import OrderedDict
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch.nn as nn
from mmengine.logging import print_log

#: The command-line switch of the tools that restores lenient loading.
ALLOW_PARTIAL_FLAG = '--allow-partial-checkpoint'
#: Attributes under which our hosts keep their upsamplers (the steps'
#: ``upsample_modules``, the SegFormer head's ``upsamplers``) and the
#: layers that exist only for them (DeepLabV3+'s ``upsample_guide``).
UPSAMPLER_ATTRS = ('upsample_modules', 'upsamplers', 'upsample_guide')
#: How many keys a message names per kind of mismatch.
MAX_NAMED = 5
#: As mmengine's ``Runner.load_checkpoint``: strip a DDP ``module.`` prefix.
DEFAULT_REVISE_KEYS = ((r'^module\.', ''), )


class CheckpointMismatchError(ValueError):
    """A checkpoint leaves model weights missing, or shaped otherwise."""


class CheckpointFit(NamedTuple):
    """How a state dict fits a model.

    Attributes:
        missing (list[str]): Model keys the state dict lacks.
        mismatched (list[tuple[str, tuple, tuple]]): ``(key, checkpoint
            shape, model shape)`` for tensors of another shape.
        unexpected (list[str]): State dict keys the model lacks, except
            upsampler keys.
        unexpected_upsampler (list[str]): State dict keys the model lacks
            that belong to an upsampler.
    """
    missing: List[str]
    mismatched: List[Tuple[str, tuple, tuple]]
    unexpected: List[str]
    unexpected_upsampler: List[str]

    @property
    def fits(self) -> bool:
        """No error: nothing missing, no shape differs, no upsampler key
        left over."""
        return not (self.missing or self.mismatched
                    or self.unexpected_upsampler)


def checkpoint_state_dict(
        checkpoint: dict,
        revise_keys: Sequence[Tuple[str, str]] = DEFAULT_REVISE_KEYS
) -> Dict:
    """The state dict of a loaded checkpoint, keys revised as mmengine does.

    Args:
        checkpoint (dict): A loaded checkpoint: ``{'state_dict': ...}``
            (mmengine, mmcv 1.x) or a bare state dict.
        revise_keys (sequence[tuple[str, str]]): ``(pattern, replacement)``
            regular expressions applied to every key. Defaults to stripping
            a leading ``module.``.

    Returns:
        dict: ``key -> tensor``.
    """
    if not isinstance(checkpoint, dict):
        raise TypeError('checkpoint must be a dict, got '
                        f'{type(checkpoint).__name__}')
    state_dict = checkpoint.get('state_dict', checkpoint)
    for pattern, replacement in revise_keys:
        state_dict = OrderedDict(
            (re.sub(pattern, replacement, key), value)
            for key, value in state_dict.items())
    return state_dict


def _upsampler_prefixes(model: nn.Module) -> List[str]:
    """The modules of ``model`` a checkpoint's upsampler weights may sit
    under: its DySample layers, and its parameter-free resizes
    (``nn.Upsample``, mmseg's ``Upsample``), which a host such as Semantic
    FPN's replaces in place by a learnable upsampler of the same name."""
    from mmdysample.models.upsamplers import DySample
    kinds = (DySample, nn.Upsample) + _stock_resizes()
    return [
        name + '.' for name, module in model.named_modules()
        if name and isinstance(module, kinds)
    ]


def _stock_resizes() -> tuple:
    """mmseg's ``Upsample`` wrapper (Semantic FPN's ``scale_heads``),
    where mmseg is installed."""
    try:
        from mmseg.models.utils import Upsample
    except ImportError:
        return ()
    return (Upsample, )


def _is_upsampler_key(key: str, prefixes: Sequence[str]) -> bool:
    parts = key.split('.')[:-1]
    return any(part in UPSAMPLER_ATTRS for part in parts) or any(
        key.startswith(prefix) for prefix in prefixes)


def compare_state_dict(model: nn.Module, state_dict: Dict) -> CheckpointFit:
    """Compare a state dict with the model's own, key by key.

    BatchNorm's ``num_batches_tracked`` counters are not required, as in
    mmengine's ``load_state_dict``; the model's non-persistent buffers are
    not part of its state dict and are not required either.

    Args:
        model (nn.Module): The model (unwrapped from DDP).
        state_dict (dict): ``key -> tensor``, keys as the model names them.

    Returns:
        CheckpointFit: The mismatches, each list in the model's (or the
        state dict's) key order.
    """
    own = model.state_dict()
    missing = [
        key for key in own
        if key not in state_dict and not key.endswith('num_batches_tracked')
    ]
    mismatched = []
    for key, tensor in own.items():
        value = state_dict.get(key)
        shape = getattr(value, 'shape', None)
        if value is not None and tuple(shape) != tuple(tensor.shape):
            mismatched.append((key, tuple(shape), tuple(tensor.shape)))
    prefixes = _upsampler_prefixes(model)
    unexpected, unexpected_upsampler = [], []
    for key in state_dict:
        if key not in own:
            if _is_upsampler_key(key, prefixes):
                unexpected_upsampler.append(key)
            else:
                unexpected.append(key)
    return CheckpointFit(missing, mismatched, unexpected,
                         unexpected_upsampler)


def _named(keys: Sequence[str]) -> str:
    shown = ', '.join(keys[:MAX_NAMED])
    more = len(keys) - MAX_NAMED
    return shown + (f', ... ({more} more)' if more > 0 else '')


def describe_fit(fit: CheckpointFit) -> List[str]:
    """One line per kind of mismatch in ``fit``."""
    lines = []
    if fit.missing:
        lines.append(f'{len(fit.missing)} model weight(s) missing from the '
                     f'checkpoint: {_named(fit.missing)}')
    if fit.mismatched:
        shapes = [
            f'{key} (checkpoint {list(ckpt)}, model {list(ours)})'
            for key, ckpt, ours in fit.mismatched
        ]
        lines.append(f'{len(shapes)} tensor(s) of another shape: '
                     f'{_named(shapes)}')
    if fit.unexpected_upsampler:
        lines.append(f'{len(fit.unexpected_upsampler)} upsampler weight(s) '
                     'the model has no place for: '
                     f'{_named(fit.unexpected_upsampler)}')
    if fit.unexpected:
        lines.append(f'{len(fit.unexpected)} checkpoint key(s) the model '
                     f'does not use: {_named(fit.unexpected)}')
    keys = fit.missing + fit.unexpected_upsampler
    if any(key.endswith('.scope.bias') for key in keys):
        lines.append('DySample scope.bias: the authors\' released '
                     'checkpoints have it; build their layers with '
                     'scope_bias=True, layers without it with '
                     'scope_bias=False')
    return lines


def check_checkpoint_fit(model: nn.Module,
                         checkpoint: dict,
                         allow_partial: bool = False,
                         source: Optional[str] = None,
                         logger: Optional[str] = 'current') -> CheckpointFit:
    """Raise if ``checkpoint`` does not fit ``model``; warn on leftovers.

    Args:
        model (nn.Module): The model (unwrapped from DDP).
        checkpoint (dict): A loaded checkpoint or a state dict.
        allow_partial (bool): Only warn when the checkpoint does not fit
            (mmengine's lenient loading). Defaults to False.
        source (str, optional): The checkpoint's name in messages.
            Defaults to None (``'checkpoint'``).
        logger (str, optional): mmengine logger for the warnings.
            Defaults to ``'current'``.

    Returns:
        CheckpointFit: How the checkpoint fits.

    Raises:
        CheckpointMismatchError: A model weight is missing, a shape differs
            or an upsampler weight is left over, and not ``allow_partial``.

    Example:
        >>> import torch
        >>> import torch.nn as nn
        >>> weights = {'weight': torch.zeros(3, 2)}
        >>> check_checkpoint_fit(nn.Linear(2, 3), weights,
        ...                      allow_partial=True, logger='silent').missing
        ['bias']
        >>> try:
        ...     check_checkpoint_fit(nn.Linear(2, 3), weights)
        ... except CheckpointMismatchError as error:
        ...     print(str(error).splitlines()[1])
          1 model weight(s) missing from the checkpoint: bias
    """
    if not isinstance(allow_partial, bool):
        raise TypeError(f'allow_partial must be a bool, got {allow_partial!r}')
    fit = compare_state_dict(model, checkpoint_state_dict(checkpoint))
    name = source or 'checkpoint'
    lines = describe_fit(fit)
    if not fit.fits and not allow_partial:
        raise CheckpointMismatchError(
            f'{name} does not fit the model:\n  ' + '\n  '.join(lines) +
            f'\nNothing was loaded. To load what fits anyway (mmengine\'s '
            f'lenient loading), pass {ALLOW_PARTIAL_FLAG}.')
    if lines:
        print_log(
            f'{name} does not match the model exactly:\n  ' +
            '\n  '.join(lines),
            logger=logger,
            level=logging.WARNING)
    return fit


def load_checked_checkpoint(model: nn.Module,
                            filename: str,
                            allow_partial: bool = False,
                            map_location: str = 'cpu') -> dict:
    """mmengine's ``load_checkpoint``, after :func:`check_checkpoint_fit`.

    The file is read once (mmengine's loader, ``torch.load`` with its
    default ``weights_only``), checked, then loaded into ``model``.

    Args:
        model (nn.Module): The model to load into.
        filename (str): Checkpoint path or URL, as mmengine accepts.
        allow_partial (bool): See :func:`check_checkpoint_fit`. Defaults to
            False.
        map_location (str): Where to map the tensors. Defaults to ``'cpu'``.

    Returns:
        dict: The loaded checkpoint.
    """
    from mmengine.runner.checkpoint import (_load_checkpoint,
                                            _load_checkpoint_to_model)
    checkpoint = _load_checkpoint(filename, map_location=map_location)
    check_checkpoint_fit(model, checkpoint, allow_partial, source=filename)
    return _load_checkpoint_to_model(
        model,
        checkpoint,
        strict=False,
        revise_keys=list(DEFAULT_REVISE_KEYS))
