# Copyright (c) mmdysample contributors. All rights reserved.
from .checkpoint import allow_mmengine_checkpoint_types
from .model import build_model, drop_pretrained
from .host_swap import STOCK, drop_in_hosts, swap_in_hosts
from .runner import (add_runner_args, add_upsampler_arg, build_runner,
                     load_config, parse_runner_args, read_config,
                     release_distributed)

__all__ = [
    'allow_mmengine_checkpoint_types', 'add_runner_args', 'add_upsampler_arg',
    'build_model', 'build_runner', 'drop_in_hosts', 'drop_pretrained',
    'load_config', 'parse_runner_args', 'read_config', 'release_distributed',
    'STOCK', 'swap_in_hosts'
]
