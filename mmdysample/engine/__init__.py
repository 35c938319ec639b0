# Copyright (c) mmdysample contributors. All rights reserved.
from .hooks import RNGStateHook

__all__ = ['RNGStateHook']
