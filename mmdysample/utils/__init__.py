# Copyright (c) mmdysample contributors. All rights reserved.
from .checkpoint import allow_mmengine_checkpoint_types
from .runner import build_runner, load_config

__all__ = ['allow_mmengine_checkpoint_types', 'build_runner', 'load_config']
