# Copyright (c) mmdysample contributors. All rights reserved.
"""DepthFormer's neck: hierarchical aggregation and heterogeneous
interaction (HAHI) of the Swin levels and the convolution stem."""
import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmcv.ops import MultiScaleDeformableAttention
from mmengine.model import BaseModule, xavier_init
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from torch import Tensor

from ..checks import check_int


def sine_position_embedding(height: int,
                            width: int,
                            num_feats: int,
                            temperature: float = 10000.,
                            normalize: bool = False,
                            scale: float = 2 * math.pi,
                            eps: float = 1e-6,
                            offset: float = 0.,
                            device=None) -> Tensor:
    """DETR's sine / cosine position embedding of an unpadded map.

    Row ``y`` and column ``x`` count from 1 (rescaled to ``(0, scale]``
    with ``normalize``); channel ``2j`` of each half is
    ``sin(p / T**(2j / num_feats))`` and channel ``2j + 1`` the cosine at
    the same frequency. The first ``num_feats`` channels encode the row,
    the last ``num_feats`` the column (the layout of mmcv 1.x's
    ``SinePositionalEncoding``, which DepthFormer used).

    Shapes: -> ``(1, 2 * num_feats, height, width)``.

    Example:
        >>> pos = sine_position_embedding(2, 3, num_feats=4)
        >>> pos.shape
        torch.Size([1, 8, 2, 3])
        >>> [round(v, 4) for v in pos[0, :2, 1, 0].tolist()]  # row 2
        [0.9093, -0.4161]
    """
    if num_feats % 2:
        raise ValueError(f'num_feats must be even, got {num_feats}')
    rows = torch.arange(1, height + 1, dtype=torch.float32, device=device)
    cols = torch.arange(1, width + 1, dtype=torch.float32, device=device)
    if normalize:
        rows = (rows + offset) / (rows[-1] + eps) * scale
        cols = (cols + offset) / (cols[-1] + eps) * scale
    exponents = torch.arange(
        0, num_feats, 2, dtype=torch.float32, device=device) / num_feats
    freqs = temperature**-exponents  # (num_feats / 2, )

    def encode(positions: Tensor) -> Tensor:
        phase = positions[:, None] * freqs  # (L, num_feats / 2)
        # sin, cos interleaved: channel 2j sin, 2j + 1 cos
        return torch.stack([phase.sin(), phase.cos()], dim=-1).flatten(1)

    row_code = encode(rows).t()[:, :, None].expand(-1, height, width)
    col_code = encode(cols).t()[:, None, :].expand(-1, height, width)
    return torch.cat([row_code, col_code], dim=0)[None]


@MODELS.register_module()
class HAHIHeteroNeck(BaseModule):
    """The HAHI neck of `DepthFormer <https://arxiv.org/abs/2203.14211>`_.

    Inputs: the convolution stem's map first, then the transformer levels
    fine to coarse (:class:`DepthFormerSwin`'s outputs). Each is projected
    by a 1x1 ``ConvModule`` (``lateral_convs``), then:

    1. **Hierarchical aggregation** (deformable *self*-attention): the
       transformer levels, brought to ``embedding_dim`` (``trans_proj``)
       and flattened into one sequence with a sine position embedding and a
       learned level embedding, attend to all levels at once with mmcv's
       :class:`~mmcv.ops.MultiScaleDeformableAttention` (``self_attn``,
       reference points at the pixel centres).
    2. **Heterogeneous interaction** (deformable *cross*-attention): the
       stem's map, brought to ``embedding_dim`` (``conv_proj``), queries
       that sequence (``multi_att``); its reference points are a learned
       linear map of its position embedding (``reference_points``).
    3. **Fusion**: each level concatenates its projected map with its
       attended one and a 3x3 ``ConvModule`` returns it to its width
       (``trans_fusion``, ``conv_fusion``); a transformer level ``i`` is
       first resized by ``scales[i]`` when that is not 1.

    Module names and shapes follow the Monocular-Depth-Estimation-Toolbox,
    so its parameter count is met exactly (``conv_fusion`` reads the
    projected stem, ``out_channels[0] + embedding_dim`` channels; the
    toolbox wrote ``in_channels[0]``, the same number in its configs). No
    input is padded, so no attention mask is used (every valid ratio is 1).
    On a CPU the attention runs mmcv's pure-PyTorch path.

    Shapes: ``[(N, in_channels[i], H_i, W_i)]`` -> a tuple of
    ``(N, out_channels[i], H_i', W_i')``, ``H_i' = H_i`` where the level's
    scale is 1.

    Args:
        in_channels (Sequence[int]): Channels of the inputs, the stem's
            first (Swin-T: 64, 96, 192, 384, 768).
        out_channels (Sequence[int]): Channels of the outputs, one per
            input (DepthFormer keeps them: the same list).
        embedding_dim (int): Width of the attention. Defaults to 256.
        positional_encoding (dict, optional): The position embedding:
            ``dict(type='SinePositionalEncoding', num_feats=...)`` and the
            optional ``temperature``, ``normalize``, ``scale``, ``eps``,
            ``offset`` of :func:`sine_position_embedding`;
            ``2 * num_feats`` must be ``embedding_dim``. Defaults to None:
            ``num_feats=embedding_dim // 2``.
        scales (Sequence[float]): Resize factor of each transformer level
            before its fusion conv (``scales[i]`` for level ``i``; extra
            entries, as the toolbox's five, are ignored). Defaults to ones.
        norm_cfg (dict): Norm of every ``ConvModule``. Defaults to
            ``dict(type='BN', requires_grad=True)``.
        act_cfg (dict): Their activation. Defaults to
            ``dict(type='ReLU', inplace=True)``.
        cross_att (bool): Run the cross-attention (else the stem's
            projection passes through). Defaults to True.
        self_att (bool): Run the self-attention (else the projected
            sequence passes through). Defaults to True.
        num_points (int): Sampling points per head, level and query.
            Defaults to 8.
        num_heads (int): Heads of both attentions. Defaults to 8.
        dropout (float): Dropout on the attention outputs (mmcv's
            default). Defaults to 0.1.
        init_cfg (dict, optional): mmengine init config. Defaults to None:
            the toolbox's initialisation (:meth:`init_weights`).

    Raises:
        ValueError: Fewer than two inputs, ``out_channels`` not one per
            input, too few ``scales``, ``embedding_dim`` not divisible by
            ``num_heads`` or not ``2 * num_feats``, or an unknown
            positional encoding type.

    Example:
        >>> feats = [torch.rand(1, c, 24 // 2**i, 32 // 2**i)
        ...          for i, c in enumerate([8, 16, 32, 64, 128])]
        >>> neck = HAHIHeteroNeck(
        ...     in_channels=[8, 16, 32, 64, 128],
        ...     out_channels=[8, 16, 32, 64, 128], embedding_dim=32,
        ...     num_points=2)
        >>> [tuple(o.shape) for o in neck(feats)]
        ... # doctest: +NORMALIZE_WHITESPACE
        [(1, 8, 24, 32), (1, 16, 12, 16), (1, 32, 6, 8), (1, 64, 3, 4),
         (1, 128, 1, 2)]
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 out_channels: Sequence[int],
                 embedding_dim: int = 256,
                 positional_encoding: Optional[dict] = None,
                 scales: Sequence[float] = (1, 1, 1, 1, 1),
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 act_cfg: dict = dict(type='ReLU', inplace=True),
                 cross_att: bool = True,
                 self_att: bool = True,
                 num_points: int = 8,
                 num_heads: int = 8,
                 dropout: float = 0.1,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        in_channels, out_channels = list(in_channels), list(out_channels)
        if len(in_channels) < 2:
            raise ValueError('in_channels must list the stem and at least '
                             f'one transformer level, got {in_channels}')
        if len(out_channels) != len(in_channels):
            raise ValueError(
                f'out_channels ({out_channels}) must have one entry per '
                f'input, as in_channels ({in_channels})')
        num_levels = len(in_channels) - 1
        if len(scales) < num_levels:
            raise ValueError(f'scales ({list(scales)}) must have at least '
                             f'{num_levels} entries, one per transformer '
                             'level')
        self.embedding_dim = check_int('embedding_dim', embedding_dim, 1)
        if self.embedding_dim % num_heads:
            raise ValueError(f'embedding_dim ({embedding_dim}) must be '
                             f'divisible by num_heads ({num_heads})')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.scales = list(scales)
        self.cross_att = cross_att
        self.self_att = self_att
        self.num_levels = num_levels
        self.pos_cfg = self._position_cfg(positional_encoding)

        def conv(cin, cout, kernel):
            return ConvModule(
                cin,
                cout,
                kernel,
                padding=kernel // 2,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg)

        dim = self.embedding_dim
        self.lateral_convs = nn.ModuleList(
            [conv(i, o, 1) for i, o in zip(in_channels, out_channels)])
        self.trans_proj = nn.ModuleList(
            [conv(o, dim, 1) for o in out_channels[1:]])
        self.trans_fusion = nn.ModuleList(
            [conv(o + dim, o, 3) for o in out_channels[1:]])
        # Sequentials: the toolbox's state-dict keys (conv_proj.0.conv...).
        self.conv_proj = nn.Sequential(conv(out_channels[0], dim, 1))
        self.conv_fusion = nn.Sequential(
            conv(out_channels[0] + dim, out_channels[0], 3))

        self.reference_points = nn.Linear(dim, 2)
        self.level_embed = nn.Parameter(torch.zeros(num_levels, dim))
        attention = dict(
            embed_dims=dim,
            num_heads=num_heads,
            num_levels=num_levels,
            num_points=check_int('num_points', num_points, 1),
            dropout=dropout,
            batch_first=True)
        self.multi_att = MultiScaleDeformableAttention(**attention)
        self.self_attn = MultiScaleDeformableAttention(**attention)

    def _position_cfg(self, cfg: Optional[dict]) -> dict:
        """The keyword arguments of :func:`sine_position_embedding`."""
        cfg = dict(cfg or {})
        kind = cfg.pop('type', 'SinePositionalEncoding')
        if kind != 'SinePositionalEncoding':
            raise ValueError('positional_encoding type must be '
                             f"'SinePositionalEncoding', got {kind!r}")
        cfg.setdefault('num_feats', self.embedding_dim // 2)
        if 2 * cfg['num_feats'] != self.embedding_dim:
            raise ValueError(
                f"positional_encoding num_feats ({cfg['num_feats']}) must "
                f'be half of embedding_dim ({self.embedding_dim})')
        return cfg

    def init_weights(self) -> None:
        """The toolbox's initialisation, unless an ``init_cfg`` is given.

        Xavier-uniform on every weight of two or more dimensions (the
        ``Conv2d`` biases zeroed), the reference-point linear's bias zeroed,
        ``N(0, 1)`` level embeddings, and each attention's own
        initialisation (zero offsets fanned out around the reference
        points, uniform attention weights).
        """
        if self.init_cfg is not None:
            super().init_weights()
            return
        for param in self.parameters():
            if param.dim() > 1:
                nn.init.xavier_uniform_(param)
        nn.init.zeros_(self.reference_points.bias)
        nn.init.normal_(self.level_embed)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                xavier_init(module, distribution='uniform')
            elif isinstance(module, MultiScaleDeformableAttention):
                module.init_weights()
        self._is_init = True

    def _position(self, batch: int, height: int, width: int,
                  like: Tensor) -> Tensor:
        """``(N, H * W, embedding_dim)``: a map's position embedding."""
        pos = sine_position_embedding(
            height, width, device=like.device, **self.pos_cfg).to(like.dtype)
        return pos.flatten(2).transpose(1, 2).expand(batch, -1, -1)

    @staticmethod
    def _centres(shapes: Sequence[Tuple[int, int]], batch: int,
                 like: Tensor) -> Tensor:
        """Normalised pixel centres of each level, ``(N, sum HW, L, 2)`` as
        ``(x, y)`` in ``(0, 1)``, repeated for every level."""
        points = []
        for h, w in shapes:
            ys = (torch.arange(h, device=like.device, dtype=like.dtype) +
                  0.5) / h
            xs = (torch.arange(w, device=like.device, dtype=like.dtype) +
                  0.5) / w
            grid_y, grid_x = torch.meshgrid(ys, xs, indexing='ij')
            points.append(torch.stack([grid_x, grid_y], -1).reshape(-1, 2))
        points = torch.cat(points)[None, :, None]
        return points.expand(batch, -1, len(shapes), -1)

    def forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        """The fused levels, the stem's first (see the class docstring)."""
        if len(inputs) != len(self.in_channels):
            raise ValueError(
                f'HAHIHeteroNeck expects {len(self.in_channels)} inputs '
                f'(in_channels={self.in_channels}), got {len(inputs)}')
        projected = [conv(x) for conv, x in zip(self.lateral_convs, inputs)]
        feat_conv, feats_trans = projected[0], projected[1:]
        batch = feat_conv.shape[0]

        # 1. self-attention over the transformer levels, one sequence
        shapes: List[Tuple[int, int]] = []
        tokens, pos_embeds = [], []
        for i, feat in enumerate(feats_trans):
            h, w = feat.shape[2:]
            shapes.append((h, w))
            tokens.append(self.trans_proj[i](feat).flatten(2).transpose(1, 2))
            pos_embeds.append(
                self._position(batch, h, w, feat) + self.level_embed[i])
        sequence = torch.cat(tokens, 1)
        spatial_shapes = torch.as_tensor(
            shapes, dtype=torch.long, device=sequence.device)
        level_start_index = torch.cat([
            spatial_shapes.new_zeros(1),
            spatial_shapes.prod(1).cumsum(0)[:-1]
        ])
        if self.self_att:
            sequence = self.self_attn(
                sequence,
                query_pos=torch.cat(pos_embeds, 1),
                reference_points=self._centres(shapes, batch, sequence),
                spatial_shapes=spatial_shapes,
                level_start_index=level_start_index)

        # 2. cross-attention: the stem's map queries the sequence
        query_map = self.conv_proj(feat_conv)
        h, w = query_map.shape[2:]
        query = query_map.flatten(2).transpose(1, 2)
        if self.cross_att:
            query_pos = self._position(batch, h, w, query)
            points = self.reference_points(query_pos).sigmoid()
            query = self.multi_att(
                query,
                value=sequence,
                query_pos=query_pos,
                reference_points=points[:, :, None].expand(
                    -1, -1, self.num_levels, -1),
                spatial_shapes=spatial_shapes,
                level_start_index=level_start_index)
        attended = query.transpose(1, 2).reshape(batch, -1, h, w)
        outs = [self.conv_fusion(torch.cat([attended, feat_conv], 1))]

        # 3. fusion of each transformer level with its attended tokens
        for i, (tokens, feat) in enumerate(
                zip(sequence.split([h * w for h, w in shapes], 1),
                    feats_trans)):
            attended = tokens.transpose(1, 2).reshape(
                batch, -1, *feat.shape[2:])
            fused = torch.cat([feat, attended], 1)
            if self.scales[i] != 1:
                fused = resize(
                    fused, scale_factor=self.scales[i], mode='bilinear')
            outs.append(self.trans_fusion[i](fused))
        return tuple(outs)
