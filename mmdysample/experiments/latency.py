# Copyright (c) mmdysample contributors. All rights reserved.
"""Inference latency per image, measured while a Runner tests.

The hook times ``model.test_step`` of every test batch: the data
preprocessor (normalisation, padding, the copy to the device), the forward
and the post-processing into data samples. Data loading and the metrics'
``process`` are outside the timed span, so the number is the model's, not
the evaluator's. The first batch is a warm-up (lazy kernel builds, cuDNN
autotuning, allocator growth) and is not counted unless it is the only one;
on CUDA the device is synchronised before each clock reading. Latency is
the timed seconds divided by the images in the timed batches, at the test
dataloader's batch size.
"""
import time
from typing import Dict, Optional

import torch
from mmengine.hooks import Hook


def _synchronize(model) -> None:
    if not torch.cuda.is_available():
        return
    param = next(iter(model.parameters()), None)
    if param is not None and param.is_cuda:
        torch.cuda.synchronize(param.device)


def _batch_images(data_batch, outputs) -> int:
    inputs = data_batch.get('inputs') if isinstance(data_batch, dict) else None
    if isinstance(inputs, (list, tuple)) or torch.is_tensor(inputs):
        return len(inputs)
    return len(outputs)


class LatencyHook(Hook):
    """Time ``model.test_step`` during ``Runner.test()``.

    Registered on a built Runner (``runner.register_hook(LatencyHook())``);
    it changes nothing the test computes. After the test,
    :meth:`result` gives the measurement.
    """

    priority = 'LOWEST'

    def __init__(self) -> None:
        self._times = []
        self._images = []
        self._device = None

    def before_test_epoch(self, runner) -> None:
        model = runner.model
        step = model.test_step
        self._device = str(next(iter(model.parameters())).device)

        def timed_step(data_batch):
            _synchronize(model)
            start = time.perf_counter()
            outputs = step(data_batch)
            _synchronize(model)
            self._times.append(time.perf_counter() - start)
            self._images.append(_batch_images(data_batch, outputs))
            return outputs

        # An instance attribute shadows the method until after the test.
        model.test_step = timed_step

    def after_test_epoch(self, runner, metrics=None) -> None:
        runner.model.__dict__.pop('test_step', None)

    def result(self) -> Optional[Dict]:
        """``ms_per_image``, the images and batches timed, the warm-up
        batches left out and the device; None before any batch."""
        if not self._times:
            return None
        warmup = 1 if len(self._times) > 1 else 0
        seconds = sum(self._times[warmup:])
        images = sum(self._images[warmup:])
        return dict(
            ms_per_image=1000 * seconds / max(images, 1),
            images=images,
            batches=len(self._times) - warmup,
            warmup_batches=warmup,
            device=self._device)
