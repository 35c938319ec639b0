# Copyright (c) mmdysample contributors. All rights reserved.
"""``python -m mmdysample.datasets.synthetic``: see :mod:`.cli`."""
import sys

from .cli import main

if __name__ == '__main__':
    sys.exit(main(prog='python -m mmdysample.datasets.synthetic'))
