# Copyright (c) mmdysample contributors. All rights reserved.
"""Build an mmcv wheel against a torch whose headers need C++20.

torch >= 2.14 refuses to compile with less than C++20 ("C++20 or later
compatible compiler is required to use ATen"), while mmcv 2.1.0's
``setup.py`` passes ``-std=c++17`` for its C++ ops. This downloads mmcv's
source distribution, raises that flag to ``-std=c++20`` and builds the
wheel into ``--out`` with the torch of this interpreter (no build
isolation). ``make install`` calls it only for such a torch; for older
ones it builds the unmodified sdist.

    python tools/misc/build_mmcv_wheel.py --spec mmcv==2.1.0 --out DIR
    python tools/misc/build_mmcv_wheel.py --needs-cxx20  # exit 0 if so
"""
import argparse
import os
import os.path as osp
import re
import subprocess
import sys
import tarfile
import tempfile


def torch_needs_cxx20() -> bool:
    """Whether this torch's ATen header demands C++20."""
    import torch
    header = osp.join(osp.dirname(torch.__file__), 'include', 'ATen',
                      'ATen.h')
    with open(header) as f:
        return '202002L' in f.read()


def raise_cxx_standard(setup_py: str) -> int:
    """Replace ``-std=c++14`` / ``-std=c++17`` by ``-std=c++20`` in
    ``setup_py``; returns how many flags changed."""
    with open(setup_py) as f:
        text = f.read()
    new, count = re.subn(r'-std=c\+\+1[47]', '-std=c++20', text)
    with open(setup_py, 'w') as f:
        f.write(new)
    return count


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--spec', default='mmcv==2.1.0')
    parser.add_argument('--out', help='wheel folder')
    parser.add_argument('--needs-cxx20', action='store_true',
                        help='only say (exit status 0 / 1) whether this '
                        "torch's headers need C++20")
    args = parser.parse_args(argv)
    if args.needs_cxx20:
        return 0 if torch_needs_cxx20() else 1
    if args.out is None:
        parser.error('--out is required to build')
    pip = [sys.executable, '-m', 'pip']
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(pip + [
            'download', '--no-deps', '--no-build-isolation', '--no-binary',
            ':all:', '-d', tmp, args.spec
        ], check=True)
        (sdist, ) = [f for f in os.listdir(tmp) if f.endswith('.tar.gz')]
        with tarfile.open(osp.join(tmp, sdist)) as tar:
            tar.extractall(tmp)
        src = osp.join(tmp, sdist[:-len('.tar.gz')])
        count = raise_cxx_standard(osp.join(src, 'setup.py'))
        if not count:
            print(f'error: no -std=c++14/17 flag in {sdist} setup.py',
                  file=sys.stderr)
            return 1
        print(f'{sdist}: {count} C++ standard flag(s) raised to c++20')
        subprocess.run(pip + [
            'wheel', '--no-deps', '--no-build-isolation', '--no-cache-dir',
            '-w', args.out, src
        ], check=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
