"""The launch's cheap composition (hydra_plugins/qfeat_launcher/compose.py) gives every job the
config Hydra composes for it in full, fails where Hydra fails, and places its job directory."""

from collections.abc import Iterator

import pytest
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict

from hydra_plugins.qfeat_launcher.compose import JobConfigs, task_config
from sweep.config.compose import CONF_DIR
from sweep.config.schema import register_configs
from sweep.job.keys import plan_job

JOBS = [
    ["bits=5"],
    ["seed=3", "bits=8", "data.n_sequences=16"],
    ["compression=gptq", "bits=3", "calibration_sequences=8"],
    ["compression=wanda", "sparsity=0.3", "bits=4"],
    ["+experiment=debug", "seed=2"],
    ["model=pythia-70m", "sae=pythia-70m-res-sm", "sae.layer=3"],
    ["sae.layers=[0,2]", "wandb.entity=someone"],
    ["compression.granularity=group", "compression.group_size=32"],
    ["+compression.unknown=1"],  # composes (validation refuses it later, in both paths)
    ["++survival.watch=[1,2]"],
    ["hydra.job.chdir=false", "bits=6"],  # a hydra override: composed in full
]


@pytest.fixture(scope="module")
def hydra_context() -> Iterator[tuple]:
    """Hydra's config loader and a multirun's master config, as a launch has them."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration("config", ["out_root=/tmp/x"], RunMode.MULTIRUN)
        yield loader, master


def full(loader, master, overrides: list[str], num: int = 0):
    cfg = loader.load_sweep_config(master, overrides)
    with open_dict(cfg.hydra.job):
        cfg.hydra.job.num = num
    return cfg


@pytest.mark.parametrize("overrides", JOBS, ids=lambda o: " ".join(o))
def test_each_job_gets_the_config_hydra_composes(hydra_context, overrides) -> None:
    loader, master = hydra_context
    configs = JobConfigs(loader, master)
    for _ in range(2):  # the second from the composed base of its config-group choices
        cheap = configs.task(overrides)
        expected = task_config(full(loader, master, overrides))
        assert OmegaConf.to_container(cheap, resolve=True) == OmegaConf.to_container(
            expected, resolve=True
        )
        assert OmegaConf.is_struct(cheap) == OmegaConf.is_struct(expected)
        configs.tasks.clear()


def test_job_keys_agree_and_bases_are_shared(hydra_context) -> None:
    loader, master = hydra_context
    configs = JobConfigs(loader, master)
    for bits in range(2, 9):  # magnitude has no bit-width: one key for all
        for compression in ("rtn", "magnitude"):
            overrides = [f"compression={compression}", f"bits={bits}"]
            expected = plan_job(task_config(full(loader, master, overrides)))
            assert plan_job(configs.task(overrides)).key == expected.key
    assert len(configs.bases) == 2  # one full compose per compression method, not per job


@pytest.mark.parametrize("bad", [["no_such_key=1"], ["bits=[1"], ["compression=nope"]])
def test_a_job_that_does_not_compose_fails_as_in_hydra(hydra_context, bad) -> None:
    loader, master = hydra_context
    with pytest.raises(Exception) as hydra_error:
        full(loader, master, bad)
    with pytest.raises(type(hydra_error.value)):
        JobConfigs(loader, master).task(bad)


def test_job_dir_is_where_the_job_writes(hydra_context) -> None:
    loader, master = hydra_context
    configs = JobConfigs(loader, master)
    for num, job in [(0, ["bits=4"]), (7, ["hydra.sweep.subdir=job_${hydra.job.num}"])]:
        overrides = ["out_root=/tmp/x", *job]  # a sweep's jobs carry its command line's overrides
        cfg = full(loader, master, overrides, num)
        expected = f"{cfg.hydra.sweep.dir}/{cfg.hydra.sweep.subdir}"
        assert str(configs.job_dir(num, overrides)) == expected
