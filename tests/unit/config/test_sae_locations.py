"""Where a job's local SAEs live and what of them enters its key: one directory per layer."""

import shutil
from pathlib import Path

from conftest import compose_config, default_sae_dir
from sweep.base.paths import tiny_sae_dir
from sweep.config.locations import local_sae_digest, local_sae_path


def test_a_local_sae_path_names_each_layer() -> None:
    sae = compose_config(["sae.name=local", "sae.path='/saes/L{layer}/sae'"]).sae
    assert local_sae_path(sae, 3) == Path("/saes/L3/sae")
    assert local_sae_path(compose_config([]).sae, 1) == tiny_sae_dir("jumprelu", 1)


def test_the_key_hashes_every_measured_layer(tmp_path: Path) -> None:
    """One layer: that directory's digest (earlier keys hold); several: any layer's file counts."""
    for layer in (0, 2):
        shutil.copytree(tiny_sae_dir("jumprelu", layer), tmp_path / f"layer{layer}")
    one = compose_config(["sae.name=local", f"sae.path='{tmp_path}/layer{{layer}}'"]).sae
    both = compose_config(
        ["sae.name=local", f"sae.path='{tmp_path}/layer{{layer}}'", "sae.layers=[0,2]"]
    ).sae
    single, several = local_sae_digest(one), local_sae_digest(both)
    assert single == local_sae_digest(compose_config([]).sae) and single != several
    assert default_sae_dir() == tiny_sae_dir("jumprelu", 2)
    (tmp_path / "layer0" / "cfg.json").write_text("{}")
    assert local_sae_digest(both) != several and local_sae_digest(one) == single
