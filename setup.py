# Copyright (c) mmdysample contributors. All rights reserved.
"""Packaging for mmdysample.

Dependency ranges are declared here and nowhere else (no import-time version
asserts). torch and mmcv are listed but not pinned: mmcv 2.x has no wheels on
PyPI for recent torch releases, so it is built from source against the torch
you already have (``make install`` does this; see README.md).
"""
import os.path as osp

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def get_version() -> str:
    scope = {}
    with open(osp.join(HERE, 'mmdysample', 'version.py')) as f:
        exec(compile(f.read(), 'version.py', 'exec'), scope)
    return scope['__version__']


def readme() -> str:
    with open(osp.join(HERE, 'README.md'), encoding='utf-8') as f:
        return f.read()


MMDET = ['mmdet>=3.0.0,<3.4.0', 'pycocotools']
MMSEG = ['mmsegmentation>=1.0.0,<1.3.0', 'ftfy', 'regex']
TESTS = [
    'pytest>=7', 'pytest-xdist', 'onnx>=1.14', 'onnxruntime>=1.16',
    'onnxscript',
    # The Triton kernel's tests run it in Triton's CPU interpreter.
    'triton>=3.4'
]

setup(
    name='mmdysample',
    version=get_version(),
    description='DySample (ICCV 2023) dynamic upsamplers for OpenMMLab '
    'detection and segmentation',
    long_description=readme(),
    long_description_content_type='text/markdown',
    keywords='computer vision, upsampling, object detection, segmentation',
    url='https://arxiv.org/abs/2308.15085',
    packages=find_packages(exclude=('configs', 'tools', 'tests', 'docs')),
    include_package_data=True,
    # The fused CPU kernel is compiled from source on first use.
    package_data={'mmdysample': ['models/upsamplers/csrc/*.cpp']},
    python_requires='>=3.8',
    license='Apache License 2.0',
    classifiers=[
        'Development Status :: 4 - Beta',
        'License :: OSI Approved :: Apache Software License',
        'Operating System :: OS Independent',
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
    install_requires=[
        'torch>=2.0',
        'mmengine>=0.10.0,<1.0.0',
        'mmcv>=2.0.0,<2.2.0',
        'numpy',
        'opencv-python',
    ],
    extras_require=dict(
        mmdet=MMDET,
        mmseg=MMSEG,
        tests=MMDET + MMSEG + TESTS,
        all=MMDET + MMSEG + TESTS,
    ),
    zip_safe=False)
