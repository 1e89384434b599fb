"""qfeat's launchers. Each first answers what it can without running anything (complete jobs,
jobs sharing a key, configs that fail their checks: sweep.cli.relaunch) and launches only the
rest: in this process (basic), or through submitit, waiting with a status line per job state
change, recording a failed outcome for every job that ended without reporting one (cancelled,
out of time, died), never raising for a failed job, and placing local jobs one per GPU."""

import logging
import os
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher, SlurmLauncher
from omegaconf import OmegaConf, open_dict

from hydra_plugins.qfeat_launcher.compose import JobConfigs
from hydra_plugins.qfeat_launcher.progress import Tracked, label_jobs, watch

log = logging.getLogger(__name__)

OWN_KEYS = {"poll_s", "devices"}  # qfeat's own launcher settings, not submitit's
GENERIC_KEYS = set(OmegaConf.structured(BaseQueueConf).keys()) - {"submitit_folder"}


def machine_gpus() -> list[int]:
    """The GPUs jobs may use: CUDA_VISIBLE_DEVICES when set, else every GPU torch sees."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        import torch

        return list(range(torch.cuda.device_count()))
    ids = [d.strip() for d in visible.split(",") if d.strip()]
    if not all(d.isdigit() for d in ids):
        raise ValueError(
            f"CUDA_VISIBLE_DEVICES={visible} is not a list of GPU indices: "
            "set hydra.launcher.devices=[...]"
        )
    return [int(d) for d in ids]


class _Triaging:
    """The pass before anything is launched (sweep.cli.relaunch), on cheaply composed configs."""

    config: Any
    hydra_context: Any
    job_configs: JobConfigs | None = None  # the sweeper's, holding the configs it composed
    jobs_run_here = False  # True: jobs run in this process, wandb's writer waits for them
    start_wandb_writer: Callable[[], None] = staticmethod(lambda: None)

    def __getstate__(self) -> dict:
        """Each submitted job gets the launcher pickled: not the launch's composed configs."""
        return {k: v for k, v in self.__dict__.items() if k != "job_configs"}

    def _triage(self, jobs: list[tuple[int, list[str]]]) -> list:
        from sweep.cli.relaunch import announce, triage

        configs = self.job_configs or JobConfigs(self.hydra_context.config_loader, self.config)
        first_of_key: dict = {}
        triaged = [
            triage(num, o, configs.job_dir(num, o), lambda o=o: configs.task(o), first_of_key)
            for num, o in jobs
        ]
        announce(triaged)
        if any(job.submit for job in triaged):
            from sweep.job.wandb_queue import serve_launch

            self.start_wandb_writer = serve_launch(self.config, defer=self.jobs_run_here)
        return triaged

    @staticmethod
    def _close(triaged: list, returns: dict[int, JobReturn]) -> list[JobReturn]:
        """Every job's return in launch order: answered ones from their outcome, jobs that shared
        a key from the job that ran for them."""
        from sweep.cli.relaunch import answer_same_key

        out = []
        for job in triaged:
            if job.submit:
                out.append(returns[job.num])
                continue
            answer = job.answer if job.same_as is None else answer_same_key(job)
            out.append(
                JobReturn(
                    overrides=job.overrides,
                    status=JobStatus.COMPLETED,
                    _return_value=answer.frac_survived,
                )
            )
        return out


class QfeatBasicLauncher(_Triaging, BasicLauncher):
    """hydra/launcher=qfeat_basic (the default): the jobs left to run, one after another, in this
    process; their wandb runs are written after the last."""

    jobs_run_here = True

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        hydra_logging, verbose = self.config.hydra.hydra_logging, self.config.hydra.verbose
        configure_log(hydra_logging, verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        triaged = self._triage(
            [(initial_job_idx + i, list(o)) for i, o in enumerate(job_overrides)]
        )
        returns = {}
        try:
            for job in (j for j in triaged if j.submit):
                log.info("\t#%d : %s", job.num, " ".join(filter_overrides(job.overrides)))
                cfg = self.hydra_context.config_loader.load_sweep_config(self.config, job.overrides)
                with open_dict(cfg):
                    cfg.hydra.job.id = cfg.hydra.job.num = job.num
                returns[job.num] = run_job(
                    hydra_context=self.hydra_context,
                    task_function=self.task_function,
                    config=cfg,
                    job_dir_key="hydra.sweep.dir",
                    job_subdir_key="hydra.sweep.subdir",
                )
                configure_log(hydra_logging, verbose)
        finally:
            self.start_wandb_writer()
        return self._close(triaged, returns)


class _Watching(_Triaging):
    """What both submitit launchers add to submitit's: the pass before submitting, the waiting,
    the status and the outcomes."""

    params: dict[str, Any]

    def __call__(self, sweep_overrides, job_dir_key, job_num, job_id, singleton_state):
        """Run one job (in its own process), noting in its log the devices it saw and when."""
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        print(f"qfeat job #{job_num} CUDA_VISIBLE_DEVICES={visible!r} start {_now()}", flush=True)
        try:
            return super().__call__(  # type: ignore[misc]
                sweep_overrides, job_dir_key, job_num, job_id, singleton_state
            )
        finally:
            print(f"qfeat job #{job_num} end {_now()}", flush=True)

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        log.info("Submitit '%s' sweep output dir : %s", self._EXECUTOR, sweep_dir)
        tracked = [Tracked(initial_job_idx + i, list(o)) for i, o in enumerate(job_overrides)]
        label_jobs(tracked)
        triaged = self._triage([(t.num, t.overrides) for t in tracked])
        todo = []
        for t, job in zip(tracked, triaged, strict=True):
            t.dir = job.job_dir
            if job.submit:
                todo.append(t)
        if todo:
            submit_ready = self._submit(todo)
            max_num_timeout = int(self.params.get("max_num_timeout") or 0)
            watch(todo, self.params["poll_s"], max_num_timeout, self._outcome_file, submit_ready)
        for t in todo:
            if t.result is None:
                self._record_failure(t)
        returns = {
            t.num: t.result or JobReturn(overrides=t.overrides, status=JobStatus.COMPLETED)
            for t in todo
        }
        return self._close(triaged, returns)

    def _submit(self, tracked: list[Tracked]) -> Callable[[], None]:
        raise NotImplementedError

    def _job_args(self, t: Tracked) -> tuple:
        return (t.overrides, "hydra.sweep.dir", t.num, f"job_id_for_{t.num}", Singleton.get_state())

    def _submitit_params(self) -> dict[str, Any]:
        return {k: v for k, v in self.params.items() if k not in OWN_KEYS | {"submitit_folder"}}

    def _outcome_file(self, t: Tracked) -> Path:
        from sweep.results.files import OUTCOME_FILE

        return t.dir / OUTCOME_FILE

    def _record_failure(self, t: Tracked) -> None:
        """A failed outcome for a job that ended without one of its own."""
        from sweep.job.outcomes import Outcome, write_outcome

        if self._outcome_file(t).exists():
            return
        error = t.error or "ended without a result"
        write_outcome(
            t.dir,
            Outcome(job=str(t.num), overrides=t.overrides, status="failed", error=error),
        )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


class QfeatSlurmLauncher(_Watching, SlurmLauncher):
    """hydra/launcher=slurm: one array of SLURM tasks, followed through sacct."""

    def _submit(self, tracked: list[Tracked]) -> Callable[[], None]:
        import submitit

        params = self._submitit_params()
        timeouts = params.pop("max_num_timeout", 0)
        executor = submitit.AutoExecutor(
            folder=self.params["submitit_folder"], cluster="slurm", slurm_max_num_timeout=timeouts
        )
        executor.update_parameters(
            **{k if k in GENERIC_KEYS else f"slurm_{k}": v for k, v in params.items()}
        )
        jobs = executor.map_array(self, *zip(*map(self._job_args, tracked), strict=True))
        for t, job in zip(tracked, jobs, strict=True):
            t.job = job
        return lambda: None


class QfeatLocalLauncher(_Watching, LocalLauncher):
    """hydra/launcher=local: local processes; with GPUs, one job per GPU and the rest queued."""

    def _submit(self, tracked: list[Tracked]) -> Callable[[], None]:
        import submitit

        params = self._submitit_params()
        executor = submitit.LocalExecutor(folder=self.params["submitit_folder"])
        executor.update_parameters(**params)
        per_job = max(1, params.get("gpus_per_node") or 0)
        devices = self.params.get("devices")
        if devices is None and (params.get("gpus_per_node") or 0) > 0:
            devices = machine_gpus()
            if not devices:
                log.warning("no GPU visible: running the jobs on CPU")
        if not devices:
            executor.update_parameters(gpus_per_node=0)
            jobs = executor.map_array(self, *zip(*map(self._job_args, tracked), strict=True))
            for t, job in zip(tracked, jobs, strict=True):
                t.job = job
            return lambda: None
        if per_job > len(devices):
            raise ValueError(f"gpus_per_node={per_job} but only devices {devices} to place on")
        return _GpuQueue(self, executor, tracked, list(devices), per_job).submit_ready


class _GpuQueue:
    """Hands each waiting job gpus_per_node free devices, taking them back when it ends."""

    def __init__(self, launcher, executor, tracked: list[Tracked], free: list[int], per_job: int):
        self.launcher, self.executor, self.tracked = launcher, executor, tracked
        self.free, self.per_job = free, per_job
        self.holding: list[Tracked] = []

    def submit_ready(self) -> None:
        for t in [t for t in self.holding if t.job.done()]:
            self.holding.remove(t)
            self.free.extend(t.devices)
        for t in self.tracked:
            if t.job is None and len(self.free) >= self.per_job:
                t.devices = tuple(self.free[: self.per_job])
                del self.free[: self.per_job]
                self.executor.update_parameters(visible_gpus=t.devices, gpus_per_node=self.per_job)
                t.job = self.executor.submit(self.launcher, *self.launcher._job_args(t))
                self.holding.append(t)
