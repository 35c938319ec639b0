# Copyright (c) mmdysample contributors. All rights reserved.
import io
import os
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config

from mmdysample.engine import (SafeResumeHook, checkpoint_is_complete,
                               newest_complete_checkpoint)
from mmdysample.engine.atomic_backend import temp_path_for


def checkpoint_bytes(value=0.0):
    buf = io.BytesIO()
    torch.save({'state_dict': {'w': torch.full((64, ), value)}}, buf)
    return buf.getvalue()


WHOLE = checkpoint_bytes()


def put(path, data=WHOLE):
    path.write_bytes(data)
    return str(path)


def runner_for(work_dir, resume=True, load_from=None):
    return SimpleNamespace(
        cfg=Config(dict(resume=resume, load_from=load_from)),
        work_dir=str(work_dir))


def point_last_checkpoint(work_dir, text):
    (work_dir / 'last_checkpoint').write_text(text)


def read_last_checkpoint(work_dir):
    return (work_dir / 'last_checkpoint').read_text()


# ----------------------------------------------------------------------------
# checkpoint_is_complete
# ----------------------------------------------------------------------------


def test_whole_checkpoint_is_complete(tmp_path):
    assert checkpoint_is_complete(put(tmp_path / 'iter_2.pth'))


@pytest.mark.parametrize('keep', [0, 1, 4, 100, 0.5, 0.9, -1])
def test_truncated_checkpoint_is_not(tmp_path, keep):
    """Cut anywhere (the header, the tensors, the zip directory)."""
    if isinstance(keep, float):
        keep = int(len(WHOLE) * keep)
    path = put(tmp_path / 'iter_2.pth', WHOLE[:keep])
    assert not checkpoint_is_complete(path)
    with pytest.raises(Exception):  # what mmengine would hit on resume
        torch.load(path)


def test_missing_checkpoint_is_not(tmp_path):
    assert not checkpoint_is_complete(str(tmp_path / 'iter_2.pth'))


def test_legacy_format_and_directories_count_as_complete(tmp_path):
    path = str(tmp_path / 'legacy.pth')
    torch.save({'w': torch.ones(2)}, path,
               _use_new_zipfile_serialization=False)
    assert checkpoint_is_complete(path)
    (tmp_path / 'deepspeed.pth').mkdir()
    assert checkpoint_is_complete(str(tmp_path / 'deepspeed.pth'))


def test_newest_complete_checkpoint_skips_partial_files(tmp_path):
    put(tmp_path / 'iter_2.pth')
    put(tmp_path / 'iter_10.pth')  # numeric, not text, order
    put(tmp_path / 'iter_12.pth', WHOLE[:300])
    put(tmp_path / 'best_coco_bbox_mAP_iter_14.pth')  # not a resume point
    assert newest_complete_checkpoint(str(tmp_path)) == str(tmp_path /
                                                            'iter_10.pth')
    assert newest_complete_checkpoint(str(tmp_path / 'none')) is None


# ----------------------------------------------------------------------------
# SafeResumeHook.before_run
# ----------------------------------------------------------------------------


def test_truncated_latest_falls_back_to_the_newest_complete(tmp_path):
    put(tmp_path / 'iter_2.pth')
    latest = put(tmp_path / 'iter_4.pth', WHOLE[:len(WHOLE) // 2])
    stale = temp_path_for(str(tmp_path / 'iter_6.pth'))
    put(tmp_path / os.path.basename(stale), WHOLE[:100])
    point_last_checkpoint(tmp_path, latest)

    SafeResumeHook().before_run(runner_for(tmp_path))
    assert read_last_checkpoint(tmp_path) == str(tmp_path / 'iter_2.pth')
    # The killed write's temporary file is gone, the partial file stays
    # (it is evidence, and the next save overwrites it).
    assert sorted(os.listdir(tmp_path)) == [
        'iter_2.pth', 'iter_4.pth', 'last_checkpoint'
    ]


def test_complete_latest_is_left_alone(tmp_path):
    put(tmp_path / 'iter_2.pth')
    latest = put(tmp_path / 'iter_4.pth')
    point_last_checkpoint(tmp_path, latest + '\n')
    SafeResumeHook().before_run(runner_for(tmp_path))
    assert read_last_checkpoint(tmp_path) == latest + '\n'


def test_empty_last_checkpoint_is_repaired(tmp_path):
    """Killed while CheckpointHook rewrote last_checkpoint in place."""
    put(tmp_path / 'iter_2.pth')
    point_last_checkpoint(tmp_path, '')
    SafeResumeHook().before_run(runner_for(tmp_path))
    assert read_last_checkpoint(tmp_path) == str(tmp_path / 'iter_2.pth')


def test_deleted_latest_with_nothing_else_starts_afresh(tmp_path):
    """max_keep_ckpts=1 removes the old file before the new one is whole."""
    point_last_checkpoint(tmp_path, str(tmp_path / 'iter_2.pth'))
    SafeResumeHook().before_run(runner_for(tmp_path))
    assert not (tmp_path / 'last_checkpoint').exists()


def test_explicit_partial_resume_path_raises(tmp_path):
    put(tmp_path / 'iter_2.pth')
    bad = put(tmp_path / 'iter_4.pth', WHOLE[:500])
    with pytest.raises(ValueError, match='iter_4.pth.*iter_2.pth'):
        SafeResumeHook().before_run(runner_for(tmp_path, load_from=bad))
    # A whole one is fine.
    SafeResumeHook().before_run(
        runner_for(tmp_path, load_from=str(tmp_path / 'iter_2.pth')))


def test_no_resume_touches_nothing(tmp_path):
    put(tmp_path / 'iter_4.pth', WHOLE[:500])
    point_last_checkpoint(tmp_path, str(tmp_path / 'iter_4.pth'))
    SafeResumeHook().before_run(runner_for(tmp_path, resume=False))
    assert read_last_checkpoint(tmp_path) == str(tmp_path / 'iter_4.pth')
