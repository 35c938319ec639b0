# Copyright (c) mmdysample contributors. All rights reserved.
from .atomic_backend import AtomicLocalBackend, atomic_write
from .hooks import CheckpointFitHook, RNGStateHook
from .safe_resume_hook import (SafeResumeHook, checkpoint_is_complete,
                               newest_complete_checkpoint)

__all__ = [
    'AtomicLocalBackend', 'atomic_write', 'CheckpointFitHook',
    'RNGStateHook', 'SafeResumeHook', 'checkpoint_is_complete',
    'newest_complete_checkpoint'
]
