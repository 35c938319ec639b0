# Copyright (c) mmdysample contributors. All rights reserved.
from .checkpoint import allow_mmengine_checkpoint_types
from .model import build_model, drop_pretrained
from .runner import (add_runner_args, build_runner, load_config,
                     parse_runner_args, release_distributed)

__all__ = [
    'allow_mmengine_checkpoint_types', 'add_runner_args', 'build_model',
    'build_runner', 'drop_pretrained',
    'load_config', 'parse_runner_args', 'release_distributed'
]
