"""Config schemas of qfeat's launchers (hydra/launcher=local and =slurm build on these)."""

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf, SlurmQueueConf


@dataclass
class QfeatLocalConf(LocalQueueConf):
    """submitit's local launcher, one job per GPU when it has GPUs to place jobs on."""

    _target_: str = "hydra_plugins.qfeat_launcher.launcher.QfeatLocalLauncher"
    # GPUs to place jobs on, gpus_per_node of them per job, the rest of the jobs queued. null: the
    # machine's GPUs (CUDA_VISIBLE_DEVICES, else all) when gpus_per_node > 0, else CPU jobs.
    devices: list[int] | None = None
    poll_s: float = 1.0  # how often the launch checks its jobs' states


@dataclass
class QfeatSlurmConf(SlurmQueueConf):
    """submitit's SLURM launcher."""

    _target_: str = "hydra_plugins.qfeat_launcher.launcher.QfeatSlurmLauncher"
    poll_s: float = 5.0  # how often the launch asks sacct for its jobs' states


ConfigStore.instance().store(
    group="hydra/launcher", name="qfeat_local", node=QfeatLocalConf, provider="qfeat"
)
ConfigStore.instance().store(
    group="hydra/launcher", name="qfeat_slurm", node=QfeatSlurmConf, provider="qfeat"
)
