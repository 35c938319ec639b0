# Copyright (c) mmdysample contributors. All rights reserved.
"""ONNX export of DySample layers and of the models that use them.

Both of PyTorch's exporters are supported, with a dynamic batch, height and
width:

* ``dynamo=False``: the TorchScript-based exporter (``torch.jit`` tracing,
  ``dynamic_axes``);
* ``dynamo=True``: the ``torch.export``-based exporter (``dynamic_shapes``
  with :class:`torch.export.Dim`), from torch 2.5 (:mod:`.exporters`; an
  older torch gets a ``RuntimeError`` saying so before any tracing).

What a model export contains (:class:`TensorForward`):

* mmdet detectors: ``extract_feat``, i.e. backbone + neck (our
  ``DySampleFPN``), one output per pyramid level. The RPN / RoI heads
  (proposal sampling, NMS) are left to the runtime.
* mmseg segmentors: the ``mode='tensor'`` forward, i.e. backbone + decode
  head, the logits at the decode head's resolution (``1/4`` for SegFormer),
  before resizing to the image and ``argmax``.

The input is the preprocessed batch (normalised, padded) that the model's
``data_preprocessor`` would produce. Its height and width must be multiples
of the network's total stride (``size_divisor``, 32 for the ResNet / MiT
models here, the size mmdet's preprocessor pads to): the necks and heads
choose how to match level sizes at trace time, so a graph exported at a
multiple of 32 is only valid at multiples of 32.

Fixed-size graphs (``static=True``, ``--static``): some models compute
reshape sizes in Python from the input's size, and both exporters write
those numbers into the graph as constants. DepthFormer is one (mmseg's
``SwinTransformer`` partitions windows with ``int(...)`` of a shape, mmcv's
``MultiScaleDeformableAttention`` splits its values by level sizes); its
graph fails in onnxruntime at any other size, with either exporter. Such a
model exports for one input size, the size it is deployed at (480 x 640
for NYU), with no dynamic axis, and is verified there.

Known limit: the TorchScript-based exporter freezes the key / value length
of ``nn.MultiheadAttention`` (``F.multi_head_attention_forward`` reshapes
with it) into the graph, so a SegFormer (MiT) exported with ``dynamo=False``
only runs at the export's number of tokens; export it with ``dynamo=True``.
DySample and the ResNet + FPN detectors are size-generic with both.

Guided upsamplers (:func:`~mmdysample.models.guide.needs_guide`: FADE,
SAPA-B, IndexNet, A2U, ...) export as a graph of two inputs, ``input``
``(N, C, H, W)`` and ``guide`` ``(N, C_g, sH, sW)``. With ``dynamo=True``
the guide's axes are derived from the input's (``batch``, ``s * height``,
``s * width``: one ``torch.export.Dim`` each, so the graph states the
relation); the TorchScript exporter cannot express a relation between
axes, so there the guide shares the ``batch`` axis and has height and
width axes of its own (``guide_height``, ``guide_width``), and the layer's
own shape check holds only at trace time. Either graph is valid for a guide
of exactly ``s`` times the input's size, as the layer is.

``onnx`` and ``onnxruntime`` (and ``onnxscript`` for ``dynamo=True``) are
imported when used.
"""
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config
from torch import Tensor

from .exporters import exporter_kwargs
from .graph_io import (DYNAMIC_AXES, GUIDE_DYNAMIC_AXES, GUIDE_NAME,
                       INPUT_NAME, Shape, as_tuple, check_example_shape,
                       dynamic_shapes, input_names, output_names,
                       random_inputs)

#: GridSample entered the default ONNX domain in opset 16.
MIN_OPSET = 16
#: Max abs difference accepted between onnxruntime and PyTorch (float32).
DEFAULT_ATOL = 1e-4


class TensorForward(nn.Module):
    """The raw-tensor forward of a detector or segmentor, for export.

    Detectors (mmdet ``BaseDetector``) run ``extract_feat`` (backbone +
    neck): ``(N, 3, H, W) -> tuple of (N, C, H / stride_i, W / stride_i)``.
    Anything else runs ``model(inputs, mode='tensor')``, which for mmseg
    segmentors is backbone + decode head: ``(N, 3, H, W) -> (N, K, H / 4,
    W / 4)`` logits for SegFormer.

    Args:
        model (nn.Module): A built detector or segmentor.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.is_detector = _is_detector(model)

    @property
    def exported_part(self) -> str:
        """What the forward covers, in words."""
        if self.is_detector:
            return 'backbone + neck (extract_feat)'
        return "mode='tensor' forward (backbone + decode head logits)"

    def forward(self, inputs: Tensor) -> Union[Tensor, Tuple[Tensor, ...]]:
        if self.is_detector:
            return tuple(self.model.extract_feat(inputs))
        return self.model(inputs, mode='tensor')


def _is_detector(model: nn.Module) -> bool:
    try:
        from mmdet.models.detectors import BaseDetector
    except ImportError:
        return False
    return isinstance(model, BaseDetector)


def build_export_model(cfg: Union[str, Config],
                       checkpoint: Optional[str] = None,
                       allow_partial_checkpoint: bool = False
                       ) -> TensorForward:
    """Build ``cfg.model`` for export, without downloading any weights.

    Pretrained backbone weights (``init_cfg`` of type ``Pretrained``,
    ``pretrained=...``) are dropped and SyncBN becomes BN; the model is
    built in the config's ``default_scope`` (``mmdet`` when unset).

    Args:
        cfg (str | Config): A config or its path.
        checkpoint (str, optional): Weights to load, after checking that
            they fit the model (see :mod:`mmdysample.utils.checkpoint_fit`).
            Defaults to None (the layers' default initialisation, enough to
            check an export).
        allow_partial_checkpoint (bool): Load a checkpoint that leaves
            weights missing or shaped otherwise, with warnings. Defaults to
            False.

    Returns:
        TensorForward: The model's exportable forward, in eval mode.
    """
    # complexity.build_model is the one place that builds a model from a
    # config without downloads; imported here to keep mmdet / mmseg lazy.
    from mmdysample.utils.complexity import build_model
    if not isinstance(cfg, Config):
        cfg = Config.fromfile(cfg)
    model = build_model(cfg)
    if checkpoint is not None:
        from mmdysample.utils.checkpoint_fit import load_checked_checkpoint
        load_checked_checkpoint(model, checkpoint, allow_partial_checkpoint)
    return TensorForward(model).eval()


def export_module(module: nn.Module,
                  path: str,
                  example_shape: Shape,
                  opset: int = 17,
                  dynamo: bool = False,
                  size_divisor: int = 1,
                  static: bool = False) -> str:
    """Export a module of one ``(N, C, H, W)`` input with dynamic N, H, W
    (or, with ``static``, for ``example_shape`` only).

    A guided upsampler (:func:`~mmdysample.models.guide.needs_guide`) is
    exported with its guide as the second input, ``guide``, of shape
    :func:`~mmdysample.models.guide.guide_shape` (see the module docstring
    for its dynamic axes).

    Args:
        module (nn.Module): The module, exported in its current mode.
        path (str): The ``.onnx`` file to write (weights included).
        example_shape (Sequence[int]): ``(N, C, H, W)`` of the example
            input used for tracing.
        opset (int): ONNX opset, at least 16 (GridSample). The dynamo
            exporter writes opset 18 and converts it down to a lower one.
            Defaults to 17.
        dynamo (bool): Use the ``torch.export``-based exporter instead of
            the TorchScript-based one. Defaults to False.
        size_divisor (int): Height and width are exported as multiples of
            this (``size_divisor * Dim`` under ``dynamo=True``).
            Defaults to 1.
        static (bool): Export for ``example_shape`` only: no dynamic axis
            (see the module docstring). Defaults to False.

    Returns:
        str: ``path``.

    Raises:
        RuntimeError: If the exported graph fixed a batch, height or width
            dimension of an input (``torch.export`` specialises silently
            when the model's code needs a concrete size); nothing is left
            at ``path`` then. Also, before any tracing, if ``dynamo`` is
            True on a torch older than
            :data:`~mmdysample.deployment.exporters.DYNAMO_MIN_TORCH`.
    """
    if isinstance(opset, bool) or not isinstance(opset, int) \
            or opset < MIN_OPSET:
        raise ValueError(f'opset must be an int >= {MIN_OPSET} (GridSample), '
                         f'got {opset!r}')
    if isinstance(size_divisor, bool) or not isinstance(size_divisor, int) \
            or size_divisor < 1:
        raise ValueError('size_divisor must be a positive int, got '
                         f'{size_divisor!r}')
    shape = check_example_shape(example_shape, size_divisor)
    exporter = exporter_kwargs(dynamo)
    if dynamo and not static:
        # torch.export specialises dimensions of size 0 and 1, so a batch of
        # 1 would be frozen: trace with 2 (the batch is dynamic anyway).
        shape = (max(shape[0], 2), ) + shape[1:]
    examples = tuple(random_inputs(module, shape).values())
    with torch.no_grad():
        names = output_names(len(as_tuple(module(*examples))))
    parent = osp.dirname(osp.abspath(path))
    os.makedirs(parent, exist_ok=True)

    inputs = input_names(module)
    if static:
        dynamic = dict(external_data=False, verbose=False) if dynamo else {}
    elif dynamo:
        dynamic = dict(
            dynamic_shapes=dynamic_shapes(module, size_divisor),
            external_data=False,  # one self-contained file
            verbose=False)
    else:
        axes = {INPUT_NAME: dict(DYNAMIC_AXES)}
        if GUIDE_NAME in inputs:
            axes[GUIDE_NAME] = dict(GUIDE_DYNAMIC_AXES)
        for name in names:
            axes[name] = {0: 'batch', 2: f'{name}_height', 3: f'{name}_width'}
        dynamic = dict(dynamic_axes=axes)
    torch.onnx.export(
        module,
        examples,
        path,
        opset_version=opset,
        input_names=inputs,
        output_names=names,
        **exporter,
        **dynamic)

    for name in [] if static else inputs:
        fixed = sorted(set(DYNAMIC_AXES) - set(symbolic_input_axes(path,
                                                                   name)))
        if fixed:
            os.remove(path)  # a static graph must not pass for a dynamic one
            raise RuntimeError(
                f'exporting to {path} (dynamo={dynamo}) fixed the axes '
                f'{[DYNAMIC_AXES[a] for a in fixed]} of the input {name!r}: '
                'the model code needs a concrete size there (e.g. '
                'int(x.shape[2]) or a branch on it)')
    return path


def export_upsampler(layer: nn.Module,
                     path: str,
                     example_shape: Optional[Shape] = None,
                     opset: int = 17,
                     dynamo: bool = False) -> str:
    """Export an upsampler ``(N, C, H, W) -> (N, C, sH, sW)`` to ONNX.

    Batch, height and width are dynamic; any sizes work at run time. A
    guided upsampler (FADE, SAPA-B, IndexNet, A2U, ...) gets a second graph
    input, ``guide`` ``(N, C_g, sH, sW)`` (see :func:`export_module`).

    Args:
        layer (nn.Module): The upsampler, e.g. a :class:`DySample`.
        path (str): The ``.onnx`` file to write.
        example_shape (Sequence[int], optional): ``(N, C, H, W)`` of the
            tracing input. Defaults to ``(1, C, 16, 16)`` with ``C`` the
            layer's ``in_channels`` (or ``channels``, as ``CARAFEUnfold``).
        opset (int): ONNX opset, at least 16. Defaults to 17.
        dynamo (bool): Use the ``torch.export``-based exporter.
            Defaults to False.

    Returns:
        str: ``path``.

    Example:
        >>> import os.path as osp
        >>> import tempfile
        >>> import torch
        >>> from mmdysample import DySample
        >>> from mmdysample.deployment import export_upsampler, verify_onnx
        >>> layer = DySample(16)
        >>> x = torch.rand(2, 16, 5, 7)  # not the export size
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = export_upsampler(layer, osp.join(tmp, 'up.onnx'))
        ...     print(verify_onnx(path, {'input': x}, layer(x)) < 1e-4)
        True
    """
    if example_shape is None:
        channels = getattr(layer, 'in_channels',
                           getattr(layer, 'channels', None))
        if not isinstance(channels, int):
            raise ValueError(f'{type(layer).__name__} has no in_channels: '
                             'pass example_shape=(N, C, H, W)')
        example_shape = (1, channels, 16, 16)
    return export_module(layer, path, example_shape, opset, dynamo)


def export_model(cfg: Union[str, Config],
                 checkpoint: Optional[str],
                 path: str,
                 shape: Shape = (64, 64),
                 dynamo: bool = False,
                 batch: int = 1,
                 opset: int = 17,
                 size_divisor: int = 32,
                 allow_partial_checkpoint: bool = False,
                 static: bool = False) -> str:
    """Export a detector's or segmentor's :class:`TensorForward` to ONNX.

    See the module docstring for what is exported. Batch, height and width
    are dynamic; height and width must be multiples of ``size_divisor``.

    Args:
        cfg (str | Config): The model config or its path.
        checkpoint (str, optional): Weights to load, or None.
        path (str): The ``.onnx`` file to write.
        shape (Sequence[int]): ``(H, W)`` of the tracing input.
            Defaults to ``(64, 64)``.
        dynamo (bool): Use the ``torch.export``-based exporter.
            Defaults to False.
        batch (int): Batch of the tracing input. Defaults to 1.
        opset (int): ONNX opset, at least 16. Defaults to 17.
        size_divisor (int): Total stride of the network. Defaults to 32.
        allow_partial_checkpoint (bool): See :func:`build_export_model`.
            Defaults to False.
        static (bool): For ``(batch, 3, *shape)`` only (see the module
            docstring). Defaults to False.

    Returns:
        str: ``path``.
    """
    module = build_export_model(cfg, checkpoint, allow_partial_checkpoint)
    return export_module(module, path, (batch, 3, *shape), opset, dynamo,
                         size_divisor, static)


def symbolic_input_axes(path: str,
                        input_name: str = INPUT_NAME) -> List[int]:
    """Axes of an ONNX graph input declared symbolic (not a fixed size)."""
    import onnx
    graph = onnx.load(path, load_external_data=False).graph
    for value in graph.input:
        if value.name == input_name:
            dims = value.type.tensor_type.shape.dim
            return [
                i for i, d in enumerate(dims)
                if d.HasField('dim_param') and not d.HasField('dim_value')
            ]
    raise ValueError(f'{path} has no input named {input_name!r}, only '
                     f'{[v.name for v in graph.input]}')


def verify_onnx(path: str, inputs: Dict[str, Tensor],
                expected: Union[Tensor, Sequence[Tensor]]) -> float:
    """Run ``path`` with onnxruntime and compare it with PyTorch's outputs.

    Args:
        path (str): An ONNX file.
        inputs (dict[str, Tensor]): Graph inputs by name: ``input``, and
            ``guide`` for a guided upsampler's graph.
        expected (Tensor | Sequence[Tensor]): The PyTorch outputs, in the
            graph's output order.

    Returns:
        float: The largest absolute difference over all outputs.

    Raises:
        ValueError: If ``inputs`` does not name the graph's inputs, or the
            number or the shapes of the outputs differ.
    """
    import onnxruntime as ort
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    wanted = [value.name for value in session.get_inputs()]
    if sorted(wanted) != sorted(inputs):
        raise ValueError(f'{path} takes the inputs {wanted}, got '
                         f'{sorted(inputs)}')
    feeds = {
        name: value.detach().cpu().numpy()
        for name, value in inputs.items()
    }
    outputs = session.run(None, feeds)
    expected = as_tuple(expected)
    if len(outputs) != len(expected):
        raise ValueError(f'{path} has {len(outputs)} outputs, expected '
                         f'{len(expected)}')
    error = 0.0
    for i, (out, ref) in enumerate(zip(outputs, expected)):
        ref = ref.detach().cpu().numpy()
        if out.shape != ref.shape:
            raise ValueError(f'output {i} of {path} has shape {out.shape}, '
                             f'PyTorch gives {ref.shape}')
        if out.size:
            error = max(error, float(np.abs(out - ref).max()))
    return error


def other_shape(shape: Shape, size_divisor: int = 1) -> Tuple[int, ...]:
    """A different ``(N, C, H, W)`` to check a dynamic export at.

    One more image, and a height and width that differ from ``shape`` (odd
    ones when ``size_divisor`` is 1) and from each other's change.
    """
    n, c, h, w = shape
    return (n + 1, c, h + 3 * size_divisor, w + 5 * size_divisor)


def compare_with_torch(module: nn.Module,
                       path: str,
                       shapes: Sequence[Shape],
                       seed: int = 0) -> List[Tuple[Tuple[int, ...], float]]:
    """:func:`verify_onnx` on random inputs of several shapes.

    A guided upsampler gets a random guide of
    :func:`~mmdysample.models.guide.guide_shape` beside each input.

    Args:
        module (nn.Module): The exported module.
        path (str): Its ONNX file.
        shapes (Sequence[Sequence[int]]): ``(N, C, H, W)`` of the input.
        seed (int): Seeds the random inputs. Defaults to 0.

    Returns:
        list[tuple]: ``(shape, max abs error)`` per shape of the input.

    Raises:
        RuntimeError: If onnxruntime cannot run the graph at a shape (a
            size frozen into a reshape, typically).
    """
    gen = torch.Generator().manual_seed(seed)
    results = []
    for shape in shapes:
        shape = tuple(shape)
        inputs = random_inputs(module, shape, gen)
        with torch.no_grad():
            expected = module(*inputs.values())
        try:
            error = verify_onnx(path, inputs, expected)
        except Exception as err:  # onnxruntime's own exception types
            raise RuntimeError(f'{path} does not run at input shape {shape}: '
                               f'{err}') from err
        results.append((shape, error))
    return results
