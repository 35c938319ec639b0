# Copyright (c) mmdysample contributors. All rights reserved.
from .hooks import CheckpointFitHook, RNGStateHook

__all__ = ['CheckpointFitHook', 'RNGStateHook']
