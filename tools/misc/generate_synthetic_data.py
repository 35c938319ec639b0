# Copyright (c) mmdysample contributors. All rights reserved.
"""Generate the synthetic shapes dataset used by the mmdysample configs.

Example::

    python tools/misc/generate_synthetic_data.py --out data/synthetic \
        --num-train 400 --num-val 50 --img-size 192 --seed 0

See :mod:`mmdysample.datasets.synthetic` for the on-disk layout.
"""
import importlib.util
import os.path as osp
import sys
from types import ModuleType

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SYNTHETIC_PY = osp.join(REPO_ROOT, 'mmdysample', 'datasets', 'synthetic.py')


def load_generator() -> ModuleType:
    """Load the generator module.

    The module file is loaded directly from the repository so that the
    tool neither needs mmdysample to be installed nor imports the package
    ``__init__`` (which pulls in torch); it falls back to the installed
    package when the file is not next to this script.

    Returns:
        ModuleType: The ``mmdysample.datasets.synthetic`` module.
    """
    if osp.isfile(SYNTHETIC_PY):
        spec = importlib.util.spec_from_file_location(
            'mmdysample_synthetic_data', SYNTHETIC_PY)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    from mmdysample.datasets import synthetic
    return synthetic


def main() -> int:
    """Parse the command line and run the generator.

    Returns:
        int: Process exit status.
    """
    return load_generator().main(prog=osp.basename(__file__))


if __name__ == '__main__':
    sys.exit(main())
