"""wandb off the jobs' critical path: a job that ends writes its run's request into its sweep's
queue and goes on; one writer process per launch makes each job's run from its request and
files (one run per job, as before), at the lowest CPU priority.

A launch with jobs to run lists the queue in $QFEAT_WANDB_WRITERS, which its jobs inherit, and
starts its writer (hydra_plugins/qfeat_launcher): a submitit launch before the first job (local
processes, SLURM tasks: the writer reads the queue on the shared filesystem), the default
in-process launch after the last (on the machine that runs the jobs any concurrent work slows
them). A job run outside a launch starts a writer for its own process. A writer ends when the
process it serves has ended and the queue is empty, so it outlives the launch by the time the
last runs take. Requests are claimed by renaming them: two writers never log one run.

    <out_root>/<sweep_name>/wandb/queue/<key>.json     a job's request
    <out_root>/<sweep_name>/wandb/queue/writer.log     the writer's log (warnings, sync hints)

python -m sweep.job.wandb_queue QUEUE PID   drain QUEUE until process PID has ended (what the
                                            writer runs, from this checkout).
"""

import contextlib
import functools
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig

from sweep.base.atomic import write_json_atomic
from sweep.base.errors import QfeatError, one_line
from sweep.config.validate import wandb_mode
from sweep.job import tracking

log = logging.getLogger("qfeat")

SERVED = "QFEAT_WANDB_WRITERS"  # queues a live writer serves (os.pathsep-separated)
WRITER_LOG = "writer.log"
POLL_S = 0.2


def queue_of(cfg: DictConfig) -> Path:
    """The sweep's wandb queue."""
    return Path(cfg.out_root) / cfg.sweep_name / "wandb" / "queue"


def _served() -> list[str]:
    return [q for q in os.environ.get(SERVED, "").split(os.pathsep) if q]


def _mark_served(queue: Path) -> None:
    """List `queue` in $QFEAT_WANDB_WRITERS: this process and its children start no writer."""
    if str(queue) not in _served():
        os.environ[SERVED] = os.pathsep.join([*_served(), str(queue)])


def start_writer(queue: Path, until_pid: int) -> None:
    """A detached writer draining `queue` until process `until_pid` has ended; the queue is
    marked served for this process and its children."""
    queue.mkdir(parents=True, exist_ok=True)
    root = str(Path(__file__).resolve().parents[2])  # this checkout, before any other on the path
    code = f"import sys; sys.path.insert(0, {root!r}); import {__name__} as q; q.main(sys.argv[1:])"
    with open(queue / WRITER_LOG, "a") as out:
        subprocess.Popen(
            [sys.executable, "-c", code, str(queue), str(until_pid)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not killed with the launch's terminal or process group
        )
    _mark_served(queue)


def serve_launch(cfg: DictConfig, defer: bool = False) -> Callable[[], None]:
    """Serve the queue of the jobs a launch is about to run (they inherit $QFEAT_WANDB_WRITERS
    and queue their runs for it), unless wandb is off or logged in the jobs. Returns what starts
    the writer: called here, or by the launch after its last job with `defer` (jobs running in
    this process: any concurrent work slows a small model's many short parallel ops, even at
    the lowest priority). A no-op when nothing is served."""
    try:
        mode = wandb_mode(cfg)
    except QfeatError:
        return lambda: None  # each job reports it, as its one line
    queue = queue_of(cfg)
    if mode == "disabled" or not cfg.wandb.background or str(queue) in _served():
        return lambda: None
    _mark_served(queue)
    start = functools.partial(start_writer, queue, os.getpid())
    if not defer:
        start()
        return lambda: None
    return start


def hand_off(cfg: DictConfig, key: str, out: Path, error: str | None = None) -> None:
    """The job's wandb run: queued for the writer (logged here with `wandb.background=false`).
    Never raises for wandb: a failure is one warning; the job's files have its result."""
    if wandb_mode(cfg) == "disabled":
        return
    req = tracking.request(cfg, key, out, error)
    if not cfg.wandb.background:
        tracking.log_run(req)
        return
    queue = queue_of(cfg)
    try:
        write_json_atomic(queue / f"{key}.json", req)
        if str(queue) not in _served():
            start_writer(queue, os.getpid())
    except (OSError, QfeatError) as err:
        log.warning("qfeat: wandb run not queued (%s); the job's files have it", one_line(err))
        return
    log.info(
        "wandb %s run %s: logged in the background (%s)",
        req["mode"],
        req["init"]["id"],
        queue / WRITER_LOG,
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def drain(queue: Path, until_pid: int) -> int:
    """Log every queued request, waiting for more while `until_pid` lives; returns how many."""
    logged = 0
    while True:
        ended = not _alive(until_pid)  # checked first: a last request is still found below
        pending = sorted(queue.glob("*.json"))
        for path in pending:
            claimed = path.with_name(f"{path.stem}.claimed-{os.getpid()}")
            try:
                path.rename(claimed)
            except FileNotFoundError:  # another writer took it
                continue
            try:
                tracking.log_run(json.loads(claimed.read_text()))
                logged += 1
            except Exception:  # one bad request must not stop the others
                log.exception("qfeat: wandb run from %s failed", path.name)
            claimed.unlink(missing_ok=True)
        if ended and not pending:
            return logged
        if not pending:
            time.sleep(POLL_S)


def lowest_priority() -> None:
    """Run only in the gaps other work leaves: nice 19, and on Linux the same for this
    session's scheduling group (a new session gets its own autogroup, and the kernel shares the
    CPU between autogroups before it looks at nice values: without this a nice 19 writer still
    took a core from the jobs, doubling their measure pass)."""
    os.nice(19)
    with contextlib.suppress(OSError):  # not Linux, or no autogroups: nice alone decides
        Path("/proc/self/autogroup").write_text("19")


def main(argv: list[str]) -> None:
    """The writer process: QUEUE PID."""
    lowest_priority()
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(message)s", datefmt="%H:%M:%S")
    queue, until_pid = Path(argv[0]), int(argv[1])
    start = time.perf_counter()
    n = drain(queue, until_pid)
    log.info(
        "writer %d: %d runs logged in %.1fs, ends", os.getpid(), n, time.perf_counter() - start
    )


if __name__ == "__main__":
    main(sys.argv[1:])
