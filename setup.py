# Copyright (c) mmdysample contributors. All rights reserved.
"""Packaging for mmdysample.

Dependency ranges are declared here and nowhere else (no import-time version
asserts). torch and mmcv are listed but not pinned: mmcv 2.x has no wheels on
PyPI for recent torch releases, so it is built from source against the torch
you already have (``make install`` does this; see README.md).

The package carries ``configs/``, ``tools/`` and ``model-index.yml`` as
``mmdysample/.mim/`` (what mmengine's ``mmdysample::`` bases and ``mim``
read): copied into a wheel, symlinked into the checkout by an editable
install. Building a wheel writes nothing into the checkout (build and
egg-info directories are temporary).
"""
import atexit
import os
import os.path as osp
import shutil
import tempfile

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = osp.dirname(osp.abspath(__file__))
MIM_FILES = ('configs', 'tools', 'model-index.yml')
CSRC = 'mmdysample.models.upsamplers.csrc'


def get_version() -> str:
    scope = {}
    with open(osp.join(HERE, 'mmdysample', 'version.py')) as f:
        exec(compile(f.read(), 'version.py', 'exec'), scope)
    return scope['__version__']


def readme() -> str:
    with open(osp.join(HERE, 'README.md'), encoding='utf-8') as f:
        return f.read()


def temporary_dir(prefix: str) -> str:
    path = tempfile.mkdtemp(prefix=f'mmdysample-{prefix}-')
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def add_mim_files(mim_dir: str, link: bool) -> None:
    """Put ``MIM_FILES`` under ``mim_dir``: symlinks or copies."""
    os.makedirs(mim_dir, exist_ok=True)
    for name in MIM_FILES:
        src, dst = osp.join(HERE, name), osp.join(mim_dir, name)
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if link:
            os.symlink(osp.relpath(src, mim_dir), dst)
        elif osp.isdir(src):
            shutil.copytree(
                src, dst, ignore=shutil.ignore_patterns('__pycache__'))
        else:
            shutil.copyfile(src, dst)


class BuildPyWithMim(build_py):
    """``build_py`` that adds ``mmdysample/.mim``.

    In an editable install the package is imported from the checkout, so
    the links go into the checkout's (git-ignored) ``mmdysample/.mim``;
    otherwise copies go into the build directory, i.e. into the wheel.
    """

    def run(self):
        super().run()
        if self.editable_mode:
            add_mim_files(osp.join(HERE, 'mmdysample', '.mim'), link=True)
        else:
            add_mim_files(
                osp.join(self.build_lib, 'mmdysample', '.mim'), link=False)


MMDET = ['mmdet>=3.0.0,<3.4.0', 'pycocotools']
MMSEG = ['mmsegmentation>=1.0.0,<1.3.0', 'ftfy', 'regex']
TESTS = [
    'pytest>=7', 'pytest-xdist', 'onnx>=1.14', 'onnxruntime>=1.16',
    'onnxscript',
    # The Triton kernel's tests run it in Triton's CPU interpreter; they
    # need triton >= 3.4 (fast_triton.TRITON_MIN) and skip below it. No
    # floor here: torch 2.1's CUDA wheels pin triton 2.1, and a floor would
    # make pip replace the user's torch.
    'triton'
]

if __name__ == '__main__':
    setup(
        name='mmdysample',
        version=get_version(),
        description='DySample (ICCV 2023) dynamic upsamplers for OpenMMLab '
        'detection and segmentation',
        long_description=readme(),
        long_description_content_type='text/markdown',
        keywords='computer vision, upsampling, object detection, segmentation',
        url='https://arxiv.org/abs/2308.15085',
        # The fused CPU kernel is compiled from source on first use: its
        # folder is a data-only package, named so setuptools ships it
        # without a warning.
        packages=find_packages(
            exclude=('configs', 'tools', 'tests', 'docs')) + [CSRC],
        include_package_data=True,
        package_data={CSRC: ['*.cpp', '*.h']},
        python_requires='>=3.8',
        license='Apache-2.0',
        license_files=['LICENSE'],
        classifiers=[
            'Development Status :: 4 - Beta',
            'Operating System :: OS Independent',
            'Programming Language :: Python :: 3',
            'Topic :: Scientific/Engineering :: Artificial Intelligence',
        ],
        install_requires=[
            # Tested: 2.1.2, 2.13.0 and 2.15.0 (docs/get_started.md).
            'torch>=2.1',
            'mmengine>=0.10.0,<1.0.0',
            'mmcv>=2.0.0,<2.2.0',
            'numpy',
            'opencv-python',
            # Student's t quantiles of compare_upsamplers' statistics
            # (mmdet and mmseg need it too).
            'scipy',
        ],
        extras_require=dict(
            mmdet=MMDET,
            mmseg=MMSEG,
            tests=MMDET + MMSEG + TESTS,
            all=MMDET + MMSEG + TESTS,
        ),
        cmdclass={'build_py': BuildPyWithMim},
        options={
            'build': {
                'build_base': temporary_dir('build')
            },
            'egg_info': {
                'egg_base': temporary_dir('egg-info')
            },
        },
        zip_safe=False)
