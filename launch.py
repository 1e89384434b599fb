"""qfeat entry point: compose the Hydra config and run one job (or a multirun sweep of them)."""

import hydra
from omegaconf import DictConfig

from sweep.cli.launch import run_safely
from sweep.config.schema import register_configs

register_configs()


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    """Run one job; returns the fraction of its active features that survived."""
    return run_safely(cfg)


if __name__ == "__main__":
    main()
