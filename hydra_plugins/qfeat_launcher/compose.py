"""Each job's config for the pass before submission, composed cheaply.

Hydra composes a job's config from scratch (its defaults tree, every YAML file, the schema):
0.05-0.2 s a job, minutes for a large sweep. Jobs of a sweep mostly differ in values, so here
Hydra composes once per distinct set of config-group choices, and each job's value overrides
are applied to a copy of that with Hydra's own function, as Hydra applies them after composing
(which overrides select a config group is decided as Hydra decides it: a group of that name
exists and the value is not a dict). A job overriding `hydra.*` is composed in full.
tests/unit/launcher checks the two agree.
"""

import copy
from pathlib import Path

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

_NUMBERED = "${hydra.job.num}"  # the default sweep subdir: a job's directory is its number


def task_config(cfg: DictConfig) -> DictConfig:
    """A composed config without its `hydra` node: what the job's task function receives."""
    task = copy.deepcopy(cfg)
    with read_write(task), open_dict(task):
        del task["hydra"]
    return task


class JobConfigs:
    """The task config and Hydra job directory of each job of a launch."""

    def __init__(self, loader: ConfigLoaderImpl, master: DictConfig) -> None:
        self.loader, self.master = loader, master
        self.parser = OverridesParser.create()
        self.bases: dict[tuple[str, ...], DictConfig] = {}
        self.tasks: dict[tuple[str, ...], DictConfig] = {}  # composed so far, by overrides
        self.sweep_dir = Path(str(master.hydra.sweep.dir))
        sweep = OmegaConf.to_container(master.hydra.sweep, resolve=False)
        self.numbered = isinstance(sweep, dict) and sweep.get("subdir") == _NUMBERED

    def _selects_group(self, override: Override) -> bool:
        return not isinstance(override.value(), dict) and self.loader.repository.group_exists(
            override.key_or_group
        )

    def _full(self, overrides: list[str], num: int = 0) -> DictConfig:
        cfg = self.loader.load_sweep_config(self.master, list(overrides))
        with open_dict(cfg.hydra.job):
            cfg.hydra.job.num = num
        return cfg

    def task(self, overrides: list[str]) -> DictConfig:
        """The job's config as its task function will see it (composed once per overrides)."""
        known = tuple(overrides)
        if known not in self.tasks:
            self.tasks[known] = self._compose(list(overrides))
        return self.tasks[known]

    def _compose(self, overrides: list[str]) -> DictConfig:
        parsed = self.parser.parse_overrides(overrides)
        if any(o.is_hydra_override() for o in parsed):
            return task_config(self._full(overrides))
        groups = tuple(o.input_line for o in parsed if self._selects_group(o))
        if groups not in self.bases:
            self.bases[groups] = task_config(self.loader.load_sweep_config(self.master, [*groups]))
        cfg = copy.deepcopy(self.bases[groups])
        ConfigLoaderImpl._apply_overrides_to_config(
            [o for o in parsed if not self._selects_group(o)], cfg
        )
        return cfg

    def job_dir(self, num: int, overrides: list[str]) -> Path:
        """The job's Hydra output directory: with the default subdir, the launch's sweep dir (where
        the closing table looks) and the job's number; otherwise as the job resolves it."""
        if self.numbered and not any(
            o.is_hydra_override() for o in self.parser.parse_overrides(list(overrides))
        ):
            return self.sweep_dir / str(num)
        cfg = self._full(overrides, num)
        return Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)
