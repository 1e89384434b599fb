"""qfeat entry point: compose the Hydra config and run one job (or a multirun sweep of them)."""

import hydra
from omegaconf import DictConfig

from sweep.entry import run_safely
from sweep.schema import register_configs

register_configs()


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> dict | None:
    """Run one job; returns its metrics."""
    return run_safely(cfg)


if __name__ == "__main__":
    main()
