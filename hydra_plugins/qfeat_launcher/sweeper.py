"""hydra/sweeper=qfeat_basic (the default): Hydra's basic sweeper, checking that every job's
config composes through JobConfigs (a full compose per distinct set of config-group choices,
not per job), and handing those configs to qfeat's launchers for their pass before launching."""

from collections.abc import Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

from hydra_plugins.qfeat_launcher.compose import JobConfigs


class QfeatBasicSweeper(BasicSweeper):
    """Hydra's basic sweeper; Hydra composes each job in full to check it, seconds a job."""

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        """Compose every job's config (raising as Hydra would on one that does not compose)."""
        configs = JobConfigs(self.hydra_context.config_loader, self.config)
        for overrides in batch:
            configs.task(list(overrides))
        if hasattr(self.launcher, "job_configs"):
            self.launcher.job_configs = configs
