"""Config schemas of qfeat's launchers (hydra/launcher=basic, =local and =slurm build on these)."""

from dataclasses import dataclass

from hydra._internal.core_plugins.basic_sweeper import BasicSweeperConf
from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf, SlurmQueueConf


@dataclass
class QfeatSweeperConf(BasicSweeperConf):
    """Hydra's basic sweeper, composing job configs once per set of config-group choices."""

    _target_: str = "hydra_plugins.qfeat_launcher.sweeper.QfeatBasicSweeper"


@dataclass
class QfeatBasicConf:
    """Hydra's basic launcher (jobs one after another in this process) after qfeat's pass."""

    _target_: str = "hydra_plugins.qfeat_launcher.launcher.QfeatBasicLauncher"


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
    group="hydra/sweeper", name="qfeat_basic", node=QfeatSweeperConf, provider="qfeat"
)
ConfigStore.instance().store(
    group="hydra/launcher", name="qfeat_basic", node=QfeatBasicConf, provider="qfeat"
)
ConfigStore.instance().store(
    group="hydra/launcher", name="qfeat_local", node=QfeatLocalConf, provider="qfeat"
)
ConfigStore.instance().store(
    group="hydra/launcher", name="qfeat_slurm", node=QfeatSlurmConf, provider="qfeat"
)
