# Copyright (c) mmdysample contributors. All rights reserved.
"""Claims: which process trains a run, when several share one work dir.

Before a process trains a run it claims the run's directory; a run
claimed by a live holder is left to it, and a claim whose holder is dead
is taken over. Any number of processes (a Slurm array, one process per
GPU, several hosts on a shared filesystem) can then walk the same list of
runs and each run is trained once.

**Files.** A claim is ``claim-<n>.json`` in the run directory: holder
host, pid, start time and a random token. Its modification time is the
heartbeat: the holder touches the file every ``timeout / 10`` seconds
from a background thread while it trains. ``n`` (the generation) grows
by one with every claim of the directory and is never used twice: a
released claim, or one taken over, is renamed ``claim-<n>.released`` (a
tombstone; the newest is kept, older ones are removed), so a finished run
keeps the record of who trained it.

**Atomic creation, NFS included.** A claim is written whole to a unique
file beside it and hard-linked to its name (``link(2)``), which fails if
the name exists. This is the recipe of ``open(2)`` for lock files on NFS,
where ``O_EXCL`` is only atomic from NFSv3 on: the server serialises the
link, and a lost reply is detected by the unique file's link count
(2: the link was made). A reader therefore never sees a partial claim.
Filesystems without hard links fall back to ``O_CREAT | O_EXCL``.

**Dead holders.** A holder is dead when it runs on this host, in this
process's pid namespace (containers sharing the host's name, as with
``--network host``, each have their own), and its pid is gone (or a
zombie), or, on any host, when its heartbeat is older than
``timeout`` seconds (``--claim-timeout``, default 600). The second rule
compares the file's modification time with this host's clock: the hosts'
clocks must agree to well within the timeout (NTP does).

**Race-free takeover.** Nobody renames or removes another process's live
claim. To take over generation ``n`` a process creates ``claim-<n+1>``:
of two processes that found the same stale claim only one can create it;
the other sees the new claim and leaves the run. The winner then
tombstones the stale claim. After every creation the creator looks
whether another file of its generation or a newer one exists (a process
that judged an old generation stale long ago could otherwise reuse a
removed name) and, if so, removes its own claim and backs off.
"""
import datetime
import errno
import json
import os
import os.path as osp
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

#: Seconds without a heartbeat after which a claim is stale (any host).
DEFAULT_TIMEOUT_S = 600.0
ACTIVE, RELEASED = '.json', '.released'
_NAME = re.compile(r'^claim-(\d+)(\.json|\.released)$')
_MAX_TRIES = 100


def check_timeout(timeout_s: float) -> float:
    """``timeout_s`` (``--claim-timeout``) as a float.

    Raises:
        TypeError: Not a number.
        ValueError: Not positive.
    """
    if isinstance(timeout_s, bool) or not isinstance(timeout_s,
                                                     (int, float)):
        raise TypeError(f'--claim-timeout must be a number of seconds, got '
                        f'{timeout_s!r}')
    if not timeout_s > 0:
        raise ValueError(f'--claim-timeout must be positive, got '
                         f'{timeout_s!r}')
    return float(timeout_s)


def pid_running(pid: int) -> bool:
    """Whether process ``pid`` of this host runs (a zombie does not).

    Example:
        >>> pid_running(os.getpid())
        True
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    try:  # exited but not reaped yet: dead for our purpose
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except (OSError, IndexError):
        return True


def pid_namespace() -> Optional[str]:
    """This process's pid namespace (Linux: ``'pid:[4026531836]'``), or
    None where there is none to read."""
    try:
        return os.readlink('/proc/self/ns/pid')
    except OSError:
        return None


def _claim_files(run_dir: str) -> List[Tuple[int, str]]:
    """``(generation, name)`` of every claim file, oldest first."""
    try:
        names = os.listdir(run_dir)
    except FileNotFoundError:
        return []
    found = [(int(m.group(1)), name) for name in names
             for m in [_NAME.match(name)] if m]
    return sorted(found)


@dataclass
class View:
    """The newest claim of a run directory, as one process saw it.

    ``generation`` is -1 when the directory has never been claimed;
    ``active`` says whether that claim is held (not released); ``info`` is
    the holder's record (None if unreadable), ``age_s`` the seconds since
    its heartbeat, ``dead`` why the holder counts as dead (None: alive, or
    nothing held).
    """
    run_dir: str
    generation: int
    active: bool
    info: Optional[Dict] = None
    age_s: float = 0.0
    dead: Optional[str] = None

    @property
    def free(self) -> bool:
        """Nothing is held, or its holder is dead."""
        return not self.active or self.dead is not None


def describe(info: Optional[Dict]) -> str:
    """``'host pid 123 (since 2026-12-07T14:00:00+00:00)'``.

    Example:
        >>> describe(dict(host='n1', pid=7, started='noon'))
        'n1 pid 7 (since noon)'
    """
    if not info:
        return 'an unknown holder (unreadable claim)'
    return (f"{info.get('host')} pid {info.get('pid')} (since "
            f"{info.get('started')})")


def _judge(info: Optional[Dict], age_s: float,
           timeout_s: float) -> Optional[str]:
    """Why the holder of a claim is dead, or None when it may be alive."""
    if (info and info.get('host') == socket.gethostname()
            and info.get('pid_ns') == pid_namespace()
            and isinstance(info.get('pid'), int)
            and not pid_running(info['pid'])):
        return f"its process {info['pid']} is gone"
    if age_s > timeout_s:
        return (f'no heartbeat for {age_s:.0f} s (--claim-timeout '
                f'{timeout_s:g} s)')
    return None


def inspect(run_dir: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> View:
    """Look at the newest claim of ``run_dir``; change nothing."""
    for _ in range(_MAX_TRIES):
        files = _claim_files(run_dir)
        if not files:
            return View(run_dir, -1, False)
        generation, name = files[-1]
        path = osp.join(run_dir, name)
        try:
            mtime = os.stat(path).st_mtime
            with open(path) as f:
                text = f.read()
        except FileNotFoundError:
            continue  # released or tombstoned meanwhile: look again
        try:
            info = json.loads(text)
        except ValueError:  # the O_EXCL fallback, written a moment later
            info = None
        if not isinstance(info, dict):
            info = None
        if not name.endswith(ACTIVE):
            return View(run_dir, generation, False, info)
        age = max(0.0, time.time() - mtime)
        return View(run_dir, generation, True, info, age,
                    _judge(info, age, timeout_s))
    raise RuntimeError(f'the claims of {run_dir} changed {_MAX_TRIES} '
                       'times while being read')


def _create(path: str, data: bytes) -> bool:
    """Create ``path`` holding ``data`` unless it exists (atomically)."""
    tmp = (f'{path}.{socket.gethostname()}.{os.getpid()}.'
           f'{uuid.uuid4().hex[:8]}.tmp')
    with open(tmp, 'xb') as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        # NFS: the server may have made the link and lost the reply.
        return os.stat(tmp).st_nlink == 2
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP,
                             errno.EMLINK):
            raise
        return _create_exclusive(path, data)  # no hard links here
    finally:
        os.remove(tmp)


def _create_exclusive(path: str, data: bytes) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, 'wb') as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return True


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _tombstone(run_dir: str, generation: int) -> None:
    """Rename claim ``generation`` ``.released`` and remove older files."""
    stem = osp.join(run_dir, f'claim-{generation}')
    try:
        os.replace(stem + ACTIVE, stem + RELEASED)
    except FileNotFoundError:
        pass
    for older, name in _claim_files(run_dir):
        if older < generation:
            _remove(osp.join(run_dir, name))


class Claim:
    """A claim this process holds; its heartbeat runs until
    :meth:`release`.

    Args:
        path (str): The ``claim-<n>.json`` file.
        info (dict): What it holds.
        heartbeat_s (float): Seconds between two touches of the file.
        log (callable): Told when the claim was lost (taken over by a
            process that judged this one dead). Defaults to ``print``.
    """

    def __init__(self,
                 path: str,
                 info: Dict,
                 heartbeat_s: float,
                 log: Callable[[str], None] = print) -> None:
        self.path = path
        self.info = info
        self.lost = False
        self._log = log
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat,
            args=(heartbeat_s, ),
            name=f'claim-heartbeat-{osp.basename(osp.dirname(path))}',
            daemon=True)
        self._thread.start()

    @property
    def generation(self) -> int:
        return int(_NAME.match(osp.basename(self.path)).group(1))

    def _beat(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                os.utime(self.path)
            except FileNotFoundError:
                self.lost = True
                self._log(f'[claims] lost the claim {self.path}: another '
                          'process judged this one dead and took it over')
                return
            except OSError:  # a network filesystem's hiccup: next beat
                continue

    def release(self) -> None:
        """Stop the heartbeat and tombstone the claim (idempotent)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join()
        if not self.lost:
            _tombstone(osp.dirname(self.path), self.generation)

    def __enter__(self) -> 'Claim':
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def take(view: View,
         timeout_s: float = DEFAULT_TIMEOUT_S,
         log: Callable[[str], None] = print) -> Optional[Claim]:
    """Claim the run of ``view`` if it is still as seen; None if another
    process was quicker (or ``view`` shows a live holder).

    ``view`` must be free (see :attr:`View.free`); a stale claim it shows
    is tombstoned once the new one is made.
    """
    if not view.free:
        return None
    generation = view.generation + 1
    path = osp.join(view.run_dir, f'claim-{generation}{ACTIVE}')
    info = dict(
        host=socket.gethostname(),
        pid=os.getpid(),
        pid_ns=pid_namespace(),
        started=datetime.datetime.now().astimezone().isoformat(
            timespec='seconds'),
        token=uuid.uuid4().hex,
        generation=generation,
        heartbeat_s=timeout_s / 10)
    os.makedirs(view.run_dir, exist_ok=True)
    if not _create(path, json.dumps(info).encode()):
        return None
    if any(g > generation or (g == generation and name != osp.basename(path))
           for g, name in _claim_files(view.run_dir)):
        _remove(path)  # a generation seen too late was in use: back off
        return None
    if view.generation >= 0:
        _tombstone(view.run_dir, view.generation)
    return Claim(path, info, timeout_s / 10, log)


@dataclass
class Attempt:
    """What :func:`try_claim` found: ``claim`` (held now) or ``holder``
    (the live holder's view); ``taken_over`` is the dead holder's view
    when the claim was taken over."""
    claim: Optional[Claim] = None
    holder: Optional[View] = None
    taken_over: Optional[View] = None


def try_claim(run_dir: str,
              timeout_s: float = DEFAULT_TIMEOUT_S,
              log: Callable[[str], None] = print) -> Attempt:
    """Claim ``run_dir`` unless a live process holds it.

    Args:
        run_dir (str): The run's directory (created if missing).
        timeout_s (float): Seconds without heartbeat after which a claim
            counts as dead. Defaults to :data:`DEFAULT_TIMEOUT_S`.
        log (callable): See :class:`Claim`.

    Returns:
        Attempt: With ``claim`` set, this process holds the run; release
        it when the run ends. Otherwise ``holder`` is the live claim.

    Example:
        >>> import tempfile
        >>> run_dir = tempfile.mkdtemp()
        >>> got = try_claim(run_dir)
        >>> try_claim(run_dir).holder.info['pid'] == os.getpid()
        True
        >>> got.claim.release()
        >>> sorted(os.listdir(run_dir))
        ['claim-0.released']
    """
    timeout_s = check_timeout(timeout_s)
    for _ in range(_MAX_TRIES):
        view = inspect(run_dir, timeout_s)
        if not view.free:
            return Attempt(holder=view)
        claim = take(view, timeout_s, log)
        if claim is not None:
            return Attempt(claim, taken_over=view if view.active else None)
    raise RuntimeError(f'could not claim {run_dir}: its claims changed '
                       f'{_MAX_TRIES} times while claiming')
