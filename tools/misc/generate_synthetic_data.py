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
_MODULE_NAME = 'mmdysample_synthetic_data'


def load_generator() -> ModuleType:
    """Load the generator module.

    The generator package is loaded from its files, so that the tool does
    not import ``mmdysample``'s ``__init__`` (which pulls in torch): from
    the installed package when there is one, else from the checkout this
    script is in.

    Returns:
        ModuleType: The ``mmdysample.datasets.synthetic`` package.
    """
    spec = importlib.util.find_spec('mmdysample')
    package_dir = (
        spec.submodule_search_locations[0]
        if spec is not None else osp.join(REPO_ROOT, 'mmdysample'))
    generator_dir = osp.join(package_dir, 'datasets', 'synthetic')
    # importlib's recipe for a package loaded from its files: registered
    # before it runs, so that its relative imports resolve.
    spec = importlib.util.spec_from_file_location(
        _MODULE_NAME,
        osp.join(generator_dir, '__init__.py'),
        submodule_search_locations=[generator_dir])
    module = importlib.util.module_from_spec(spec)
    sys.modules[_MODULE_NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[_MODULE_NAME]
        raise
    return module


def main() -> int:
    """Parse the command line and run the generator.

    Returns:
        int: Process exit status.
    """
    return load_generator().main(prog=osp.basename(__file__))


if __name__ == '__main__':
    sys.exit(main())
