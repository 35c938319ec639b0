# Copyright (c) mmdysample contributors. All rights reserved.
"""The little that ``tools/train.py`` and ``tools/test.py`` share."""
import argparse
import logging
import os
import os.path as osp
import tempfile
from typing import Optional

import torch
import torch.distributed as dist
from mmengine.config import Config, DictAction
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .host_swap import swap_in_hosts


def add_runner_args(parser: argparse.ArgumentParser) -> None:
    """The options tools/train.py and tools/test.py share with mmdet's."""
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. train_cfg.max_iters=100 '
        'key="[a,b]" (no spaces inside values)')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torchrun passes --local-rank (torch >= 2.0), older launchers
    # --local_rank.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def add_upsampler_arg(parser: argparse.ArgumentParser) -> None:
    """``--upsampler NAME`` of tools/train.py and tools/test.py."""
    parser.add_argument(
        '--upsampler',
        metavar='NAME',
        help='swap the stock modules of the model for their drop-in hosts '
        '(mmdet FPN, mmseg SegformerHead, ...) and give each this '
        'registered upsampler (e.g. DySample, DySample-S+, bilinear; '
        "'stock': the modules' own upsampling); works on an unmodified "
        'mmdet / mmseg config, also one named mmdet::PATH or mmseg::PATH')


def parse_runner_args(parser: argparse.ArgumentParser,
                      argv=None) -> argparse.Namespace:
    """Parse, and export ``LOCAL_RANK`` for launchers that pass it as an
    argument."""
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def read_config(path: str) -> Config:
    """``Config.fromfile``, also for ``mmdet::path`` / ``mmseg::path``.

    mmengine resolves ``pkg::`` names only as a ``_base_``; such a name is
    read through a one-line config that inherits it.

    Raises:
        ValueError: The file does not exist.
    """
    if '::' in path:
        with tempfile.TemporaryDirectory() as tmp:
            stem = osp.basename(path.split('::', 1)[1])
            shim = osp.join(tmp, stem)
            with open(shim, 'w') as f:
                f.write(f'_base_ = {path!r}\n')
            try:
                return Config.fromfile(shim)
            except (FileNotFoundError, ModuleNotFoundError) as err:
                raise ValueError(f'config {path!r} cannot be read: '
                                 f'{err}') from err
    if not osp.isfile(path):
        raise ValueError(f'config {path!r} does not exist')
    return Config.fromfile(path)


def load_config(path: str,
                cfg_options: Optional[dict] = None,
                launcher: str = 'none',
                work_dir: Optional[str] = None,
                upsampler: Optional[str] = None) -> Config:
    """Read a config and apply the command-line overrides.

    ``path`` may name a file or an installed package's config
    (``mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py``). ``work_dir``
    is, in order of priority, the argument, the config's own ``work_dir``,
    or ``./work_dirs/<config name>``. ``mmdysample`` is always imported (it
    registers the upsamplers and the RNG-state hook), and the
    :class:`~mmdysample.engine.RNGStateHook` is added so resumed runs are
    exact. The checkpoint hook writes atomically
    (:class:`~mmdysample.engine.AtomicLocalBackend`) and
    :class:`~mmdysample.engine.SafeResumeHook` is added, so a killed run
    resumes from its newest complete checkpoint.

    Stock modules are swapped for their drop-in hosts by
    :func:`~mmdysample.utils.host_swap.swap_in_hosts`: with ``upsampler``
    every one of them, each host then taking that upsampler; without, only
    those whose ``upsample_cfg`` the stock class cannot take. One log line
    says what was swapped.

    Raises:
        ValueError: The config does not exist, or ``upsampler`` is given
            and no module of the model can take one.
    """
    cfg = read_config(path)
    cfg.launcher = launcher
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    swap_in_hosts(cfg, upsampler, config=path)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(path))[0])
    imports = cfg.get('custom_imports', {}).get('imports', [])
    if isinstance(imports, str):
        imports = [imports]
    if 'mmdysample' not in imports:
        cfg.custom_imports = dict(
            imports=list(imports) + ['mmdysample'],
            allow_failed_imports=False)
    hooks = list(cfg.get('custom_hooks', []))
    for name in ('RNGStateHook', 'SafeResumeHook'):
        if not any(h.get('type') == name for h in hooks):
            hooks.append(dict(type=name))
    cfg.custom_hooks = hooks
    _write_checkpoints_atomically(cfg)
    return cfg


def _write_checkpoints_atomically(cfg: Config) -> None:
    """Make the checkpoint hook write through ``AtomicLocalBackend``.

    Only for a local ``out_dir`` whose backend the config leaves to
    mmengine's default; a config that names its own backend (or a remote
    ``out_dir``) keeps it.
    """
    ckpt = cfg.get('default_hooks', {}).get('checkpoint')
    if not ckpt or ckpt.get('type') not in ('CheckpointHook', CheckpointHook):
        return
    if ckpt.get('backend_args') or ckpt.get('file_client_args'):
        return
    if '://' in str(ckpt.get('out_dir') or ''):
        return
    ckpt.backend_args = dict(backend='atomic_local')


def prepare_cpu_distributed(cfg: Config) -> None:
    """Let mmengine's ``pytorch`` launcher run on machines without CUDA.

    mmengine 0.10 calls ``torch.cuda.set_device`` before it creates the
    process group, which CPU builds of torch lack, and wraps the model in DDP
    with ``device_ids=[LOCAL_RANK]``, which DDP rejects for CPU modules. On
    such machines we create the gloo process group from torchrun's
    environment (mmengine then skips its own ``init_dist``) and wrap without
    device ids. CUDA machines take mmengine's path unchanged.
    """
    if cfg.launcher != 'pytorch' or torch.cuda.is_available():
        return
    backend = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('backend')
    if backend not in (None, 'gloo'):
        # The stock runtimes ask for nccl, which needs CUDA.
        print_log(
            f'no CUDA device: using the gloo backend instead of {backend!r}',
            logger='current',
            level=logging.WARNING)
        cfg.env_cfg.dist_cfg.backend = 'gloo'
    if not dist.is_initialized():
        dist.init_process_group(
            backend='gloo',
            rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']))
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


def release_distributed(finished: bool = False) -> None:
    """Destroy the default process group, if any, before the interpreter
    exits.

    Left to interpreter shutdown, gloo's worker threads can be destroyed
    while still joinable, and the process aborts with "terminate called
    without an active exception" after a successful run. mmengine does not
    destroy the group it creates, so the tools do.

    Args:
        finished (bool): The run ended normally on this rank. Then every
            rank meets at a barrier first, so none tears the group down
            while a peer is still inside a collective (that, too, left
            threads that aborted the peer at exit). After an error there is
            no barrier: a peer may be gone, and gloo would wait for it.
            Defaults to False.
    """
    if dist.is_available() and dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()


def build_runner(cfg: Config) -> Runner:
    """Build the default Runner, or the config's ``runner_type``."""
    prepare_cpu_distributed(cfg)
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)
