# Copyright (c) mmdysample contributors. All rights reserved.
"""A model built from a config for drawing, and an image prepared for it.

:func:`build_model_from_config` builds the model with checked weights;
:func:`prepare_image` runs an image file through the config's test pipeline
and the model's data preprocessor.
"""
import copy
import os.path as osp
from typing import Any, NamedTuple, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from ..utils.model import build_model
from .capture import find_upsamplers

def build_model_from_config(config: Any,
                            checkpoint: Optional[str] = None,
                            cfg_options: Optional[dict] = None,
                            device: str = 'cpu',
                            allow_partial_checkpoint: bool = False
                            ) -> Tuple[nn.Module, Any]:
    """Build a model from a config for inference, with its weights.

    Args:
        config (str | mmengine.Config): Config file or object; its
            ``default_scope`` becomes the default scope.
        checkpoint (str, optional): An mmengine checkpoint to load, after
            checking that it fits the model (see
            :mod:`mmdysample.utils.checkpoint_fit`). Defaults to None (the
            weights the model is built with).
        cfg_options (dict, optional): Overrides merged into the config.
            Defaults to None.
        device (str): Device of the model. Defaults to ``'cpu'``.
        allow_partial_checkpoint (bool): Load a checkpoint that leaves
            weights missing or shaped otherwise, with warnings (the DySample
            layers' offset weights are still required). Defaults to False.

    Returns:
        tuple[nn.Module, mmengine.Config]: The model in eval mode and the
        config.

    Raises:
        ValueError: The model has no DySample layer, or the checkpoint holds
            no weights for one of them.
    """
    from mmengine.config import Config

    from mmdysample.utils.checkpoint_fit import load_checked_checkpoint

    if isinstance(config, str):
        cfg = Config.fromfile(config)
    else:
        cfg = copy.deepcopy(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    model = build_model(cfg)
    layers = find_upsamplers(model)
    if checkpoint is not None:
        ckpt = load_checked_checkpoint(model, checkpoint,
                                       allow_partial_checkpoint)
        state = ckpt.get('state_dict', ckpt)
        keys = {k[len('module.'):] if k.startswith('module.') else k
                for k in state}
        missing = [
            name for name, _ in layers if f'{name}.offset.weight' not in keys
        ]
        if missing:
            raise ValueError(
                f'checkpoint {checkpoint} has no offset weights for the '
                f'DySample layers {missing}; drawing their initial offsets '
                'would pass for learned ones')
    return model.to(device).eval(), cfg


class ModelInput(NamedTuple):
    """An image prepared for a model.

    Attributes:
        inputs (Tensor): Preprocessed batch ``(1, 3, H, W)``.
        data_samples (Any): The data samples, or None.
        image (np.ndarray): ``(H, W, 3)`` uint8 RGB image as the model sees
            it (resized, padding included, before normalisation).
        valid_shape (tuple[int, int]): ``(h, w)`` of the image without
            padding.
    """
    inputs: Tensor
    data_samples: Any
    image: np.ndarray
    valid_shape: Tuple[int, int]


def _test_pipeline(cfg: Any) -> Optional[list]:
    for key in ('test_dataloader', 'val_dataloader'):
        pipeline = cfg.get(key, {}).get('dataset', {}).get('pipeline')
        if pipeline:
            return list(pipeline)
    return cfg.get('test_pipeline')


def prepare_image(model: nn.Module, cfg: Any, img_path: str) -> ModelInput:
    """Run an image file through the config's test pipeline and the model's
    data preprocessor.

    Annotation loading is dropped from the test pipeline. A config without a
    test pipeline feeds the image as it is (BGR, as ``LoadImageFromFile``
    reads it) to the data preprocessor, which normalises and pads it.

    Args:
        model (nn.Module): A model with a ``data_preprocessor``.
        cfg (mmengine.Config): Its config.
        img_path (str): The image file.

    Returns:
        ModelInput: The batch and the image to draw on.
    """
    import mmcv
    from mmengine.dataset import Compose, pseudo_collate
    from mmengine.registry import DefaultScope

    if not osp.isfile(img_path):
        raise FileNotFoundError(f'image {img_path!r} does not exist')
    pipeline = _test_pipeline(cfg)
    if pipeline:
        # Transforms are looked up in the config's scope (mmdet / mmseg).
        with DefaultScope.overwrite_default_scope(cfg.get('default_scope')):
            pipeline = Compose([
                t for t in pipeline
                if 'LoadAnnotations' not in str(t['type'])
            ])
        data = pipeline(dict(img_path=img_path, img_id=0))
    else:
        img = mmcv.imread(img_path)
        data = dict(inputs=torch.from_numpy(img).permute(2, 0, 1).contiguous())
    raw = data['inputs']  # (3, h, w) uint8, channel order of the loader
    batch = model.data_preprocessor(pseudo_collate([data]), False)
    inputs = batch['inputs']
    data_samples = batch.get('data_samples')
    h, w = raw.shape[-2:]
    image = np.zeros((inputs.shape[-2], inputs.shape[-1], 3), np.uint8)
    raw = raw.permute(1, 2, 0).cpu().numpy()
    preprocessor = cfg.model.get('data_preprocessor') or {}
    if not preprocessor.get('rgb_to_bgr', False):
        raw = raw[..., ::-1]  # loaded as BGR
    image[:h, :w] = raw[:image.shape[0], :image.shape[1]]
    if data_samples and 'img_shape' in data_samples[0].metainfo:
        h, w = data_samples[0].metainfo['img_shape'][:2]
    return ModelInput(inputs, data_samples, image, (int(h), int(w)))
