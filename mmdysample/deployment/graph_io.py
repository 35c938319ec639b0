# Copyright (c) mmdysample contributors. All rights reserved.
"""Names, dynamic axes and example inputs of the graphs :mod:`.onnx`
exports: ``input`` ``(N, C, H, W)`` and, for a guided upsampler
(:func:`~mmdysample.models.guide.needs_guide`), ``guide``
``(N, C_g, sH, sW)``; outputs ``output`` or ``output0, output1, ...``."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from ..models.guide import guide_shape, needs_guide

INPUT_NAME = 'input'
#: Axes of the ``(N, C, H, W)`` input left dynamic in the graph.
DYNAMIC_AXES = {0: 'batch', 2: 'height', 3: 'width'}
#: The second input of a guided upsampler's graph, ``(N, C_g, sH, sW)``.
GUIDE_NAME = 'guide'
#: Its dynamic axes under the TorchScript exporter, which cannot tie them to
#: the input's (see :mod:`.onnx`).
GUIDE_DYNAMIC_AXES = {0: 'batch', 2: 'guide_height', 3: 'guide_width'}

Shape = Sequence[int]


def as_tuple(outputs) -> Tuple[Tensor, ...]:
    """A module's output(s) as a tuple of tensors."""
    if isinstance(outputs, Tensor):
        return (outputs, )
    return tuple(outputs)


def output_names(num_outputs: int) -> List[str]:
    """``['output']`` for one output, ``['output0', 'output1', ...]``."""
    if num_outputs == 1:
        return ['output']
    return [f'output{i}' for i in range(num_outputs)]


def check_example_shape(shape: Shape,
                        size_divisor: int) -> Tuple[int, ...]:
    """``shape`` as ints, or a ``ValueError`` naming it: a 4-D
    ``(N, C, H, W)`` of positive sizes, ``H`` and ``W`` multiples of
    ``size_divisor``."""
    shape = tuple(int(v) for v in shape)
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError('example shape must be (N, C, H, W) of positive '
                         f'sizes, got {shape}')
    if shape[2] % size_divisor or shape[3] % size_divisor:
        raise ValueError(f'example height and width {shape[2:]} must be '
                         f'multiples of size_divisor={size_divisor}')
    return shape


def input_names(module: nn.Module) -> List[str]:
    """``['input']``, or ``['input', 'guide']`` for a guided upsampler."""
    if needs_guide(module):
        return [INPUT_NAME, GUIDE_NAME]
    return [INPUT_NAME]


def random_inputs(module: nn.Module,
                  shape: Shape,
                  generator: Optional[torch.Generator] = None
                  ) -> Dict[str, Tensor]:
    """Standard-normal graph inputs by name for an input of ``shape``: the
    input, and for a guided upsampler its guide
    (:func:`~mmdysample.models.guide.guide_shape`)."""
    inputs = {INPUT_NAME: torch.randn(tuple(shape), generator=generator)}
    if needs_guide(module):
        inputs[GUIDE_NAME] = torch.randn(
            guide_shape(module, shape), generator=generator)
    return inputs


def dynamic_shapes(module: nn.Module, size_divisor: int) -> tuple:
    """``dynamic_shapes`` for ``torch.export``: the guide's sizes are
    ``s`` times the input's, as derived dims of the same ``Dim``."""
    dim = torch.export.Dim
    batch, height, width = dim('batch'), dim('height'), dim('width')

    def times(factor: int, base):
        return base if factor == 1 else factor * base

    shapes = ({
        0: batch,
        2: times(size_divisor, height),
        3: times(size_divisor, width)
    }, )
    if needs_guide(module):
        ratio = size_divisor * int(module.scale_factor)
        shapes += ({
            0: batch,
            2: times(ratio, height),
            3: times(ratio, width)
        }, )
    return shapes
