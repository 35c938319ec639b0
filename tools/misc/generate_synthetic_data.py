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


def load_generator() -> ModuleType:
    """Load the generator module.

    The module file is loaded directly, so that the tool does not import
    the package ``__init__`` (which pulls in torch): from the installed
    package when there is one, else from the checkout this script is in.

    Returns:
        ModuleType: The ``mmdysample.datasets.synthetic`` module.
    """
    spec = importlib.util.find_spec('mmdysample')
    package_dir = (
        spec.submodule_search_locations[0]
        if spec is not None else osp.join(REPO_ROOT, 'mmdysample'))
    spec = importlib.util.spec_from_file_location(
        'mmdysample_synthetic_data',
        osp.join(package_dir, 'datasets', 'synthetic.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    """Parse the command line and run the generator.

    Returns:
        int: Process exit status.
    """
    return load_generator().main(prog=osp.basename(__file__))


if __name__ == '__main__':
    sys.exit(main())
