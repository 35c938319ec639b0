# Copyright (c) mmdysample contributors. All rights reserved.
"""Several processes on one compare_upsamplers work dir.

Fast: the claims themselves (create, a live holder left alone, a dead one
taken over by pid or by heartbeat, two takers of one stale claim, a late
taker, a lost claim) and the run loop with training faked (a held run is
skipped and named, taken over when its holder dies, found finished; the
result files are replaced whole and rewritten when a record appears while
they are written).

Slow, on the tiny built-in data (SegFormer-B0, two iterations, two runs):
two processes with the same list train each run once; a process SIGKILLed
mid-run blocks nothing; under ``--launcher pytorch`` (two CPU ranks) rank
0's decisions are every rank's; and, where a Slurm cluster runs this host
(``tools/misc/slurm_local_cluster.sh``), ``tools/slurm_compare.sh``
trains each run once from a job array.
"""
import json
import multiprocessing
import os
import os.path as osp
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
from train_helpers import (NO_BUILD, REPO, SEGFORMER, free_port,
                           tiny_seg_options, tool_env)

from mmdysample.experiments import claims, plan_sweep, result_files, run_sweep
from mmdysample.experiments import runs as runs_module

TOOL = 'tools/analysis_tools/compare_upsamplers.py'
PAIR = ['bilinear', 'DySample-S+']
ELSEWHERE = 'another-host.example'


def dead_pid():
    """The pid of a process of this host that has exited and been
    reaped."""
    proc = subprocess.Popen(['true'])
    proc.wait()
    return proc.pid


def write_claim(run_dir, generation=0, age_s=0.0, **info):
    """A claim file as another process would have made it (by default on
    another host; given this host, in this pid namespace)."""
    os.makedirs(run_dir, exist_ok=True)
    path = osp.join(run_dir, f'claim-{generation}.json')
    info = dict(
        dict(
            host=ELSEWHERE,
            pid=4242,
            pid_ns=claims.pid_namespace(),
            started='earlier',
            token='t'), **info)
    with open(path, 'w') as f:
        json.dump(info, f)
    when = time.time() - age_s
    os.utime(path, (when, when))
    return path


def names(run_dir):
    return sorted(n for n in os.listdir(run_dir) if n.startswith('claim-'))


# --- fast: the claims --------------------------------------------------------


def test_a_claim_is_made_whole_then_released_as_a_tombstone(tmp_path):
    got = claims.try_claim(str(tmp_path))
    assert got.holder is None and got.taken_over is None
    info = json.loads((tmp_path / 'claim-0.json').read_text())
    assert info['host'] == socket.gethostname()
    assert info['pid'] == os.getpid()
    assert info['pid_ns'] == claims.pid_namespace()
    assert info['started'] and len(info['token']) == 32
    assert names(tmp_path) == ['claim-0.json']  # no temporary file left
    got.claim.release()
    got.claim.release()  # idempotent
    assert names(tmp_path) == ['claim-0.released']
    # The next claim takes the next generation; the tombstone before it
    # goes when that one is released.
    again = claims.try_claim(str(tmp_path))
    assert osp.basename(again.claim.path) == 'claim-1.json'
    again.claim.release()
    assert names(tmp_path) == ['claim-1.released']


def test_a_live_holder_is_left_alone(tmp_path):
    write_claim(tmp_path, age_s=5)  # another host: judged by heartbeat
    got = claims.try_claim(str(tmp_path), timeout_s=600)
    assert got.claim is None
    assert got.holder.info['pid'] == 4242 and got.holder.dead is None
    assert 5 <= got.holder.age_s < 60
    assert claims.describe(got.holder.info) == (f'{ELSEWHERE} pid 4242 '
                                                '(since earlier)')
    # A live process of this host, however old its heartbeat looks to
    # the pid rule, is alive too.
    write_claim(tmp_path, generation=1, host=socket.gethostname(),
                pid=os.getpid())
    assert claims.try_claim(str(tmp_path)).holder.generation == 1
    assert names(tmp_path) == ['claim-0.json', 'claim-1.json']


def test_a_claim_whose_process_is_gone_is_taken_over(tmp_path):
    pid = dead_pid()
    write_claim(tmp_path, host=socket.gethostname(), pid=pid)
    got = claims.try_claim(str(tmp_path))
    assert got.taken_over.dead == f'its process {pid} is gone'
    assert got.taken_over.info['pid'] == pid
    assert names(tmp_path) == ['claim-0.released', 'claim-1.json']
    got.claim.release()
    assert names(tmp_path) == ['claim-1.released']


@pytest.mark.skipif(not osp.isdir('/proc'), reason='needs /proc (Linux)')
def test_a_zombie_counts_as_gone(tmp_path):
    proc = subprocess.Popen(['true'])
    deadline = time.time() + 10
    while claims.pid_running(proc.pid) and time.time() < deadline:
        time.sleep(0.01)
    # Exited but not reaped: the pid still answers kill(pid, 0).
    with open(f'/proc/{proc.pid}/stat') as f:
        assert f.read().rsplit(')', 1)[1].split()[0] == 'Z'
    os.kill(proc.pid, 0)
    assert not claims.pid_running(proc.pid)
    proc.wait()


def test_a_pid_of_another_pid_namespace_is_not_looked_up(tmp_path):
    """A container sharing this host's name has its own pids: a pid gone
    here says nothing about it; only the heartbeat does."""
    write_claim(tmp_path, host=socket.gethostname(), pid=dead_pid(),
                pid_ns='pid:[1]')
    got = claims.try_claim(str(tmp_path))
    assert got.claim is None and got.holder.dead is None


def test_another_hosts_claim_is_taken_over_when_its_heartbeat_is_stale(
        tmp_path):
    write_claim(tmp_path, age_s=30)
    assert claims.try_claim(str(tmp_path), timeout_s=60).claim is None
    got = claims.try_claim(str(tmp_path), timeout_s=20)
    assert re.fullmatch(r'no heartbeat for 3\d s \(--claim-timeout 20 s\)',
                        got.taken_over.dead), got.taken_over.dead
    got.claim.release()


def test_an_unreadable_claim_is_judged_by_its_heartbeat(tmp_path):
    path = tmp_path / 'claim-0.json'
    path.write_text('[')  # not JSON (say, O_EXCL's file still empty)
    view = claims.inspect(str(tmp_path), timeout_s=60)
    assert view.info is None and view.dead is None and not view.free
    assert claims.describe(view.info) == ('an unknown holder (unreadable '
                                          'claim)')
    os.utime(path, (time.time() - 120, time.time() - 120))
    got = claims.try_claim(str(tmp_path), timeout_s=60)
    assert got.taken_over.dead.startswith('no heartbeat for 12')
    got.claim.release()


def test_the_heartbeat_keeps_a_claim_alive(tmp_path):
    got = claims.try_claim(str(tmp_path), timeout_s=3)  # beat: 0.3 s
    time.sleep(4)
    view = claims.inspect(str(tmp_path), timeout_s=3)
    assert view.active and view.dead is None and view.age_s < 3
    got.claim.release()


def test_without_heartbeat_a_claim_goes_stale(tmp_path):
    """What the heartbeat protects against: the same claim, its thread
    stopped, is judged dead once the timeout has passed."""
    got = claims.try_claim(str(tmp_path), timeout_s=0.5)
    got.claim._stop.set()
    got.claim._thread.join()
    time.sleep(1.0)
    assert claims.inspect(str(tmp_path), timeout_s=0.5).dead.startswith(
        'no heartbeat for')


def test_two_takers_of_one_stale_claim_one_wins(tmp_path):
    write_claim(tmp_path, age_s=1000)
    first = claims.inspect(str(tmp_path))
    second = claims.inspect(str(tmp_path))
    assert first.dead and second.dead  # both judged it dead
    won = claims.take(first)
    assert won is not None
    assert claims.take(second) is None
    assert names(tmp_path) == ['claim-0.released', 'claim-1.json']
    assert claims.inspect(str(tmp_path)).dead is None
    won.release()


def test_a_late_taker_backs_off(tmp_path):
    """A process that judged generation 0 dead, then stalled while
    another took it over, trained and released: its claim would reuse a
    generation, so it backs off."""
    write_claim(tmp_path, age_s=1000)
    late = claims.inspect(str(tmp_path))
    claims.try_claim(str(tmp_path)).claim.release()
    assert names(tmp_path) == ['claim-1.released']
    assert claims.take(late) is None
    assert names(tmp_path) == ['claim-1.released']


def _race(run_dir, start, results):
    start.wait()
    got = claims.try_claim(run_dir, timeout_s=600)
    results.put(got.claim is not None)
    time.sleep(1.0)  # hold it while the others look
    if got.claim:
        got.claim.release()


def test_processes_racing_for_one_stale_claim_take_it_once(tmp_path):
    write_claim(tmp_path, host=socket.gethostname(), pid=dead_pid())
    context = multiprocessing.get_context('fork')
    start, results = context.Event(), context.Queue()
    procs = [
        context.Process(target=_race, args=(str(tmp_path), start, results))
        for _ in range(6)
    ]
    for proc in procs:
        proc.start()
    start.set()
    won = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    assert won.count(True) == 1, won
    assert names(tmp_path) == ['claim-1.released']


def test_a_claim_taken_over_is_lost_by_its_holder(tmp_path):
    lines = []
    got = claims.try_claim(str(tmp_path), timeout_s=0.5, log=lines.append)
    # Another process judged it dead (say, its clock ran ahead).
    seen = claims.inspect(str(tmp_path))
    assert seen.dead is None
    seen.dead = 'judged dead elsewhere'
    other = claims.take(seen)
    assert other is not None
    deadline = time.time() + 10
    while not got.claim.lost and time.time() < deadline:
        time.sleep(0.02)
    assert got.claim.lost
    assert lines and 'lost the claim' in lines[0]
    got.claim.release()  # leaves the new holder's claim alone
    assert names(tmp_path) == ['claim-0.released', 'claim-1.json']
    other.release()


@pytest.mark.parametrize('value, error', [(0, ValueError),
                                          (-1.5, ValueError),
                                          ('60', TypeError),
                                          (True, TypeError)])
def test_claim_timeout_is_checked(value, error):
    with pytest.raises(error, match=r'--claim-timeout .*' + re.escape(
            repr(value))):
        claims.check_timeout(value)


# --- fast: the run loop, training faked --------------------------------------


@pytest.fixture
def fake_runs(monkeypatch):
    """Training and testing replaced by a record of which run was
    trained (mIoU 10 + seed, +1 for DySample-S+); complexity faked."""
    trained, hooks = [], {}

    def train(cfg, run_dir):
        trained.append(run_dir)
        hooks.get('train', lambda run_dir: None)(run_dir)
        return dict(
            checkpoint=osp.join(run_dir, 'iter_2.pth'),
            train_time_s=0.1,
            resumed_from=None,
            train_log=None)

    def test(cfg, run_dir, checkpoint):
        name = osp.basename(osp.dirname(run_dir))
        bonus = 0.0 if name == 'bilinear' else 1.0
        seed = int(osp.basename(run_dir).split('_')[1])
        return dict(
            metrics=dict(mIoU=10.0 + seed + bonus),
            test_time_s=0.1,
            latency=dict(ms_per_image=1.0, device='cpu'),
            test_log=None)

    monkeypatch.setattr(runs_module, 'train', train)
    monkeypatch.setattr(runs_module, 'test', test)
    monkeypatch.setattr(result_files, 'complexity_of',
                        lambda plan, name: dict(params=100, flops=1e6))
    return dict(trained=trained, hooks=hooks)


def plan(work_dir, seeds=(0, )):
    return plan_sweep(
        SEGFORMER, PAIR, seeds=seeds, work_dir=str(work_dir),
        need_data=False)


def sweep(the_plan, **kwargs):
    lines = []
    out = run_sweep(the_plan, log=lines.append, **kwargs)
    return out, '\n'.join(lines)


def test_a_run_held_by_a_live_process_is_skipped_and_named(
        fake_runs, tmp_path):
    write_claim(tmp_path / 'DySample-S+' / 'seed_0', age_s=2)
    out, log = sweep(plan(tmp_path))
    assert fake_runs['trained'] == [str(tmp_path / 'bilinear' / 'seed_0')]
    assert re.search(
        rf'run 2/2: DySample-S\+ seed 0: claimed by {ELSEWHERE} pid 4242 '
        r'\(since earlier\), heartbeat \d s ago, skipped', log), log
    assert log.count('claimed by') == 1  # the second pass says it once
    assert ('1 trained now, 0 done before, 0 failed, 1 held by other '
            'processes') in log
    assert 'still held by other processes: DySample-S+ seed 0' in log
    assert [r.upsampler for r in out['held']] == ['DySample-S+']
    results = json.loads((tmp_path / 'results.json').read_text())
    assert results['pending'] == [['DySample-S+', 0]]
    assert names(tmp_path / 'bilinear' / 'seed_0') == ['claim-0.released']


def test_a_stale_claim_is_taken_over_with_a_line(fake_runs, tmp_path):
    write_claim(tmp_path / 'DySample-S+' / 'seed_0', age_s=1000)
    out, log = sweep(plan(tmp_path), claim_timeout_s=600)
    assert len(fake_runs['trained']) == 2 and not out['held']
    assert re.search(
        rf'run 2/2: DySample-S\+ seed 0: took over the claim of {ELSEWHERE} '
        r'pid 4242 \(since earlier\): no heartbeat for 10\d\d s '
        r'\(--claim-timeout 600 s\)', log), log
    assert names(tmp_path / 'DySample-S+' / 'seed_0') == ['claim-1.released']


def test_a_held_run_is_taken_when_its_holder_dies_meanwhile(
        fake_runs, tmp_path):
    """The holder of the first run (a process of this host) dies while
    this process trains the second; the next pass takes the first over."""
    holder = subprocess.Popen(['sleep', '60'])
    write_claim(
        tmp_path / 'bilinear' / 'seed_0',
        host=socket.gethostname(),
        pid=holder.pid)

    def kill_holder(run_dir):
        holder.kill()
        holder.wait()

    fake_runs['hooks']['train'] = kill_holder
    out, log = sweep(plan(tmp_path))
    assert len(fake_runs['trained']) == 2 and not out['held']
    assert fake_runs['trained'][0].endswith(f'DySample-S+{os.sep}seed_0')
    assert log.index('run 1/2: bilinear seed 0: claimed by') < log.index(
        f'run 1/2: bilinear seed 0: took over the claim of '
        f'{socket.gethostname()} pid {holder.pid} (since earlier): its '
        f'process {holder.pid} is gone')
    assert '2 trained now' in log


def test_a_run_finished_by_another_process_joins_the_tables(
        fake_runs, tmp_path):
    """The holder finishes its run while this process trains the other;
    the next pass finds it, and the results hold its record."""
    the_plan = plan(tmp_path)
    other_dir = tmp_path / 'DySample-S+' / 'seed_0'
    claim = write_claim(other_dir, age_s=1)
    record = dict(
        upsampler='DySample-S+',
        seed=0,
        status='ok',
        metrics=dict(mIoU=42.0),
        config_digest=the_plan.runs[1].digest,
        train_time_s=1.0,
        wall_time_s=2.0,
        latency=dict(ms_per_image=1.0))

    def other_finishes(run_dir):
        (other_dir / 'metrics.json').write_text(json.dumps(record))
        os.rename(claim, other_dir / 'claim-0.released')

    fake_runs['hooks']['train'] = other_finishes
    out, log = sweep(the_plan)
    assert fake_runs['trained'] == [str(tmp_path / 'bilinear' / 'seed_0')]
    assert ('run 2/2: DySample-S+ seed 0: finished by another process '
            '(metrics.json present), skipped') in log
    assert ('1 trained now, 0 done before, 0 failed, 1 finished by other '
            'processes') in log
    results = json.loads((tmp_path / 'results.json').read_text())
    assert results['pending'] == []
    assert {r['upsampler']: r['metrics']['mIoU']
            for r in results['runs']} == {'bilinear': 10.0,
                                          'DySample-S+': 42.0}


def test_a_run_finished_by_a_process_of_another_config_stops_the_sweep(
        fake_runs, tmp_path):
    """As the plan refuses finished runs of another config, so does the
    loop when one appears meanwhile: mixing them would be silent."""
    other_dir = tmp_path / 'DySample-S+' / 'seed_0'
    write_claim(other_dir, age_s=1)

    def other_finishes(run_dir):
        (other_dir / 'metrics.json').write_text(
            json.dumps(
                dict(
                    upsampler='DySample-S+',
                    seed=0,
                    status='ok',
                    metrics=dict(mIoU=42.0),
                    config_digest='another')))

    fake_runs['hooks']['train'] = other_finishes
    with pytest.raises(ValueError, match='finished meanwhile by a process '
                       'with another config'):
        sweep(plan(tmp_path))


def test_results_written_while_a_record_appears_are_written_again(
        fake_runs, tmp_path, monkeypatch):
    """Another process finishes a run after this one has read the records
    but before it replaced the files: the files are written again, so
    whichever process writes last leaves them complete."""
    the_plan = plan(tmp_path)
    other_dir = tmp_path / 'DySample-S+' / 'seed_0'
    write_md = result_files.write_results_md

    def md_while_another_finishes(path, info, summaries, rows):
        write_md(path, info, summaries, rows)
        if not (other_dir / 'metrics.json').exists():
            os.makedirs(other_dir, exist_ok=True)
            (other_dir / 'metrics.json').write_text(
                json.dumps(
                    dict(
                        upsampler='DySample-S+',
                        seed=0,
                        status='ok',
                        metrics=dict(mIoU=42.0))))

    monkeypatch.setattr(result_files, 'write_results_md',
                        md_while_another_finishes)
    result_files.write_results(the_plan, 'mIoU')
    results = json.loads((tmp_path / 'results.json').read_text())
    assert [r['upsampler'] for r in results['runs']] == ['DySample-S+']
    assert 'DySample-S+' in (tmp_path / 'results.md').read_text()


def test_a_plot_that_fails_midway_leaves_the_last_png_whole(
        fake_runs, tmp_path, monkeypatch):
    the_plan = plan(tmp_path)
    result_files.write_results(the_plan, 'mIoU')
    png = (tmp_path / 'results.png').read_bytes()
    assert png.startswith(b'\x89PNG')

    def torn(summaries, main_metric, baseline, path, title):
        with open(path, 'wb') as f:
            f.write(png[:100])
        raise OSError('killed mid-write')

    monkeypatch.setattr(result_files, 'plot_results', torn)
    with pytest.raises(OSError, match='killed mid-write'):
        result_files.write_results(the_plan, 'mIoU')
    assert (tmp_path / 'results.png').read_bytes() == png
    assert not [n for n in os.listdir(tmp_path) if n.endswith('.tmp.png')]


def test_a_bad_claim_timeout_stops_before_training(fake_runs, tmp_path):
    with pytest.raises(ValueError, match='--claim-timeout must be positive'):
        run_sweep(plan(tmp_path), claim_timeout_s=0)
    assert fake_runs['trained'] == []


# --- slow: real processes ----------------------------------------------------


def compare_command(work_dir, data_root, *extra):
    return [
        sys.executable, TOOL, SEGFORMER, '--work-dir',
        str(work_dir), '--upsamplers', *PAIR, '--seeds', '0', *extra,
        *tiny_seg_options(data_root, 2)
    ]


def start(command):
    return subprocess.Popen(
        command,
        cwd=REPO,
        env=tool_env(**NO_BUILD),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True)


def training_starts(work_dir, name):
    """mmengine's timestamped log directories of a run's trainings."""
    run_dir = osp.join(work_dir, name, 'seed_0')
    return [
        n for n in os.listdir(run_dir) if re.fullmatch(r'\d{8}_\d{6}', n)
    ]


def assert_each_trained_once(work_dir, logs):
    for name in PAIR:
        head = f'{name} seed 0: training ('
        assert sum(log.count(head) for log in logs) == 1, (name, logs)
        run_dir = osp.join(work_dir, name, 'seed_0')
        assert osp.isfile(osp.join(run_dir, 'metrics.json'))
        assert names(run_dir) == ['claim-0.released']  # claimed once
        assert len(training_starts(work_dir, name)) == 1
    results = json.loads(open(osp.join(work_dir, 'results.json')).read())
    assert results['pending'] == [] and len(results['runs']) == 2


@pytest.mark.slow
def test_two_processes_on_one_work_dir_train_each_run_once(
        data_root, tmp_path):
    procs = [start(compare_command(tmp_path, data_root)) for _ in range(2)]
    logs = [proc.communicate(timeout=900)[0] for proc in procs]
    for proc, log in zip(procs, logs):
        assert proc.returncode == 0, log[-4000:]
    assert_each_trained_once(tmp_path, logs)


@pytest.mark.slow
def test_a_process_killed_mid_run_blocks_nothing(data_root, tmp_path):
    first = start(compare_command(tmp_path, data_root))
    seen = []
    for line in first.stdout:
        seen.append(line)
        if 'bilinear seed 0: training (' in line:
            break
    assert seen and 'training (' in seen[-1], ''.join(seen)[-4000:]
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=60)
    run_dir = tmp_path / 'bilinear' / 'seed_0'
    assert names(run_dir) == ['claim-0.json']  # left behind by the kill
    assert not (run_dir / 'metrics.json').exists()

    second = start(compare_command(tmp_path, data_root))
    log = second.communicate(timeout=900)[0]
    assert second.returncode == 0, log[-4000:]
    assert (f'run 1/2: bilinear seed 0: took over the claim of '
            f'{socket.gethostname()} pid {first.pid}') in log, log[-4000:]
    assert f'its process {first.pid} is gone' in log
    for name in PAIR:
        assert (tmp_path / name / 'seed_0' / 'metrics.json').is_file()
    assert names(run_dir) == ['claim-1.released']


@pytest.mark.slow
def test_under_a_launcher_every_rank_follows_rank_0(data_root, tmp_path):
    """Two CPU ranks (gloo); the second run is held by a live process of
    another host. Rank 0 alone claims and prints; if rank 1 decided for
    itself it would train alone and the job would hang in a collective."""
    write_claim(tmp_path / 'DySample-S+' / 'seed_0', age_s=1)
    command = [
        sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node',
        '2', '--master_port',
        str(free_port())
    ] + compare_command(tmp_path, data_root, '--launcher', 'pytorch')[1:]
    proc = start(command)
    log = proc.communicate(timeout=900)[0]
    assert proc.returncode == 0, log[-4000:]
    assert log.count('bilinear seed 0: training (') == 1
    assert log.count('DySample-S+ seed 0: claimed by') == 1, log[-4000:]
    assert (tmp_path / 'bilinear' / 'seed_0' / 'metrics.json').is_file()
    assert names(tmp_path / 'bilinear' / 'seed_0') == ['claim-0.released']
    assert not (tmp_path / 'DySample-S+' / 'seed_0' / 'metrics.json').exists()


def _slurm_here():
    """Why the Slurm test cannot run here, or '' when it can: sbatch
    present, a controller answering, this host one of its nodes."""
    if not shutil.which('sbatch'):
        return 'no sbatch (apt-get install slurm-wlm munge)'
    try:
        ping = subprocess.run(['scontrol', 'ping'],
                              stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT,
                              text=True,
                              timeout=60)
    except subprocess.TimeoutExpired:
        return 'scontrol ping did not answer within 60 s'
    if ping.returncode != 0 or 'UP' not in ping.stdout:
        return ('no Slurm controller answers (bash tools/misc/'
                'slurm_local_cluster.sh start; export SLURM_CONF=...)')
    nodes = subprocess.run(
        ['sinfo', '-h', '-N', '-n', socket.gethostname(), '-o', '%P'],
        stdout=subprocess.PIPE,
        text=True).stdout.split()
    if not nodes:
        return f'{socket.gethostname()} is not a node of the Slurm cluster'
    return ''


SLURM_MISSING = _slurm_here()


@pytest.mark.slow
@pytest.mark.slurm
@pytest.mark.skipif(bool(SLURM_MISSING), reason=SLURM_MISSING or 'ready')
def test_a_slurm_array_trains_each_run_once(data_root, tmp_path):
    partition = subprocess.run(
        ['sinfo', '-h', '-N', '-n', socket.gethostname(), '-o', '%P'],
        stdout=subprocess.PIPE,
        text=True).stdout.split()[0].rstrip('*')
    command = [
        'bash', 'tools/slurm_compare.sh', partition, 'compare-test', '2',
        SEGFORMER,
        str(tmp_path), '--upsamplers', *PAIR, '--seeds', '0',
        *tiny_seg_options(data_root, 2)
    ]
    proc = subprocess.run(
        command,
        cwd=REPO,
        env=tool_env(
            PYTHON=sys.executable,
            GPUS_PER_TASK='0',
            CPUS_PER_TASK='1',
            SBATCH_ARGS=f'--wait --nodelist={socket.gethostname()}',
            **NO_BUILD),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=900)
    logs = [
        open(osp.join(tmp_path, 'slurm', name)).read()
        for name in sorted(os.listdir(tmp_path / 'slurm'))
    ]
    assert proc.returncode == 0, proc.stdout + ''.join(logs)[-4000:]
    job = proc.stdout.split()[0]
    assert sorted(os.listdir(tmp_path / 'slurm')) == [
        f'{job}_0.log', f'{job}_1.log'
    ]
    assert_each_trained_once(tmp_path, logs)
