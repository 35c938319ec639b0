# Copyright (c) mmdysample contributors. All rights reserved.
"""Whole models with DySample against their stock upsampling.

Inference and one training step (``loss`` forward, backward and an SGD
step with lr 0) of each pair in :data:`MODEL_PAIRS`, interleaved like the
upsamplers.
"""
import os.path as osp
from typing import Callable, Dict, Optional, Sequence

import torch
import torch.nn as nn

from .candidates import fused_kernels_off
from .timing import Task, interleaved_timings, peak_memory_bytes, ratios, stats

MODEL_PASSES = {'inference': 'infer', 'train_step': 'train'}
_CONFIGS = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs')

#: (model, DySample config, baseline label, baseline config or None for
#: ``baseline_config`` of the DySample config), paths under configs/.
MODEL_PAIRS = (
    ('Faster R-CNN R50-FPN',
     'faster_rcnn/faster-rcnn_r50_fpn-dysample-lpg4_1x_coco.py', 'nearest',
     None),
    ('SegFormer-B1',
     'segformer/segformer_mit-b1-dysample-lpg4_8xb2-160k_ade20k-512x512.py',
     'bilinear',
     'segformer/segformer_mit-b1-bilinear_8xb2-160k_ade20k-512x512.py'),
)


def _model_inputs(scope: str, batch: int, h: int, w: int,
                  device: torch.device, seed: int):
    """Random images and a factory of data samples with random labels."""
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch, 3, h, w, generator=gen).to(device)
    meta = dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w))
    if scope == 'mmdet':
        from mmdet.structures import DetDataSample
        from mmengine.structures import InstanceData
        meta.update(batch_input_shape=(h, w), scale_factor=(1.0, 1.0))
        corners = torch.rand(batch, 3, 2, generator=gen) * torch.tensor(
            [w / 2, h / 2])
        sizes = torch.rand(batch, 3, 2, generator=gen) * torch.tensor(
            [w / 2, h / 2]) + 4
        labels = torch.randint(0, 80, (batch, 3), generator=gen)

        def samples():
            out = []
            for i in range(batch):
                sample = DetDataSample(metainfo=meta)
                sample.gt_instances = InstanceData(
                    bboxes=torch.cat([corners[i], corners[i] + sizes[i]],
                                     1).to(device),
                    labels=labels[i].to(device))
                out.append(sample)
            return out
    else:
        from mmengine.structures import PixelData
        from mmseg.structures import SegDataSample
        seg = torch.randint(0, 150, (batch, 1, h, w), generator=gen)

        def samples():
            out = []
            for i in range(batch):
                sample = SegDataSample(metainfo=meta)
                sample.gt_sem_seg = PixelData(data=seg[i].to(device))
                out.append(sample)
            return out

    return inputs, samples


def _model_tasks(model: nn.Module, inputs: torch.Tensor,
                 samples: Callable) -> Dict[str, Task]:
    # lr=0: the step does all its arithmetic but leaves the weights alone,
    # so every round does the same work. Fresh data samples per call (predict
    # writes into them), made and dropped outside the timed region.
    optim = torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9)
    state = {}

    def prepare_inference():
        model.eval()
        state['samples'] = samples()

    def inference():
        with torch.no_grad():
            model(inputs, state['samples'], mode='predict')

    def prepare_train():
        model.train()
        optim.zero_grad(set_to_none=True)
        state['samples'] = samples()

    def train_step():
        losses = model(inputs, state['samples'], mode='loss')
        loss, _ = model.parse_losses(losses)
        loss.backward()
        optim.step()

    return dict(
        inference=Task(prepare_inference, inference),
        train_step=Task(prepare_train, train_step))


def _with_fused_kernels_off(task: Task) -> Task:

    def off(fn: Callable[[], None]) -> Callable[[], None]:

        def run():
            with fused_kernels_off():
                fn()

        return run

    return Task(off(task.prepare), off(task.run))


#: The variant of a DySample model whose layers sample through grid_sample.
GRID_SAMPLE_VARIANT = 'DySample (grid_sample)'


def benchmark_models(device: torch.device,
                     batch: int = 1,
                     hw: Sequence[int] = (512, 512),
                     rounds: int = 5,
                     warmup: int = 1,
                     seed: int = 0,
                     config_dir: str = _CONFIGS,
                     log: Callable[[str], None] = print,
                     grid_sample: Optional[bool] = None) -> Dict:
    """Inference and one training step of DySample models vs their baseline.

    Every (model, pass) is interleaved like the upsamplers. A training step
    is ``loss`` forward, backward and an SGD step (lr 0). Pairs whose config
    is missing or that fail to build or run here are listed in ``skipped``.

    Args:
        grid_sample (bool, optional): Also time each DySample model with
            its fused kernels switched off (:data:`GRID_SAMPLE_VARIANT`:
            the same weights, sampling through ``grid_sample``). None: on
            CUDA only, where it shows the Triton kernel's gain in a whole
            training step.
    """
    from mmengine.config import Config

    from ..utils.complexity import baseline_config, build_model
    h, w = hw
    if grid_sample is None:
        grid_sample = device.type == 'cuda'
    variants, skipped = [], []
    for model_name, ours, base_label, base in MODEL_PAIRS:
        ours = osp.join(config_dir, ours)
        base = None if base is None else osp.join(config_dir, base)
        missing = [p for p in (ours, base) if p and not osp.isfile(p)]
        if missing:
            skipped.append(
                dict(model=model_name, reason=f'config(s) missing: {missing}'))
            continue
        name = osp.relpath(ours, osp.dirname(config_dir))
        pair = []
        try:
            cfg = Config.fromfile(ours)
            if base is None:
                base_cfg = baseline_config(cfg)
                base_name = f'{name} without upsample_cfg'
            else:
                base_cfg = Config.fromfile(base)
                base_name = osp.relpath(base, osp.dirname(config_dir))
            scope = cfg.get('default_scope', 'mmdet')
            for label, config, config_name in (('DySample', cfg, name),
                                               (base_label, base_cfg,
                                                base_name)):
                torch.manual_seed(seed)
                model = build_model(config).to(device)
                inputs, samples = _model_inputs(scope, batch, h, w, device,
                                                seed)
                tasks = _model_tasks(model, inputs, samples)
                for task in tasks.values():  # fail here, not mid-rounds
                    task.prepare()
                    task.run()
                variant = dict(
                    model=model_name,
                    variant=label,
                    config=config_name,
                    params=sum(p.numel() for p in model.parameters()),
                    tasks=tasks)
                pair.append(variant)
                if label == 'DySample' and grid_sample:
                    pair.append({
                        **variant, 'variant': GRID_SAMPLE_VARIANT,
                        'tasks': {
                            k: _with_fused_kernels_off(t)
                            for k, t in tasks.items()
                        }
                    })
        except Exception as err:  # a host or op missing here: say so
            first_line = str(err).splitlines()[0] if str(err) else ''
            skipped.append(
                dict(
                    model=model_name,
                    reason=f'{type(err).__name__}: {first_line}'))
            continue
        variants.extend(pair)
    for note in skipped:
        log(f"note: skipped {note['model']}: {note['reason']}")

    tasks = {(v['model'], v['variant'], p): t
             for v in variants for p, t in v['tasks'].items()}
    timings = interleaved_timings(tasks, rounds, warmup, device,
                                  seed) if tasks else {}
    results, baselines = [], {}
    for v in variants:  # DySample (and grid_sample), then the baseline
        result = {k: v[k] for k in ('model', 'variant', 'config', 'params')}
        for pass_, task in v.pop('tasks').items():
            result[pass_] = stats(timings[(v['model'], v['variant'], pass_)])
            result[pass_]['peak_mem_bytes'] = peak_memory_bytes(task, device)
        results.append(result)
        baselines[v['model']] = result
    for r in results:
        base = baselines[r['model']]
        r['ratio_to_baseline'] = ratios(r, base, MODEL_PASSES)
    return dict(
        device=str(device),
        input=[batch, 3, h, w],
        rounds=rounds,
        warmup=warmup,
        results=results,
        skipped=skipped)
