"""Compose the shipped Hydra config outside `launch.py` (audit, export), with one-line errors."""

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from sweep.base.errors import QfeatError, one_line
from sweep.config.schema import register_configs

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def compose_config(overrides: list[str] | None = None) -> DictConfig:
    """conf/config.yaml with Hydra overrides, as launch.py would compose one job."""
    register_configs()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose("config", overrides=list(overrides or []))
    except (HydraException, OmegaConfBaseException) as err:
        raise QfeatError(f"bad configuration: {one_line(str(err))}") from err


def search_path(config_dirs: list[Path]) -> list[str]:
    """The override that adds config directories (e.g. a plan's OUT with compression/plan.yaml)
    to Hydra's search path, as launch.py's --config-dir does."""
    if not config_dirs:
        return []
    for path in config_dirs:
        if not Path(path).is_dir():
            raise QfeatError(f"--config-dir {path}: not a directory")
    return [f"hydra.searchpath=[{','.join(f'file://{Path(p).resolve()}' for p in config_dirs)}]"]
