# Copyright (c) mmdysample contributors. All rights reserved.
from .checkpoint import allow_mmengine_checkpoint_types
from .runner import (add_runner_args, build_runner, load_config,
                     parse_runner_args, release_distributed)

__all__ = [
    'allow_mmengine_checkpoint_types', 'add_runner_args', 'build_runner',
    'load_config', 'parse_runner_args', 'release_distributed'
]
