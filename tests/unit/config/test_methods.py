"""One structured config per compression method: each has exactly its own options, a key holds
only what determines the result, and every bad value is one line before any model loads."""

import importlib.util
from dataclasses import fields

import pytest

from conftest import ROOT, compose_config, method
from sweep.base import libraries
from sweep.base.errors import QfeatError
from sweep.config.compression import METHODS, MagnitudeMatchedConfig, MixedConfig, NoiseConfig
from sweep.job.keys import plan_job

NAMES = METHODS.names()


def options(name: str) -> set[str]:
    """The option names of a method's config node."""
    return {f.name for f in fields(METHODS.get(name))} - {"name"}


def default_bits(name: str) -> int:
    """4 where the method takes it (or has no bits option), else its first bit-width."""
    choices = METHODS.get(name).bit_choices
    return 4 if choices is None or 4 in choices else choices[0]


def installed(name: str) -> bool:
    """Whether every library the method needs is importable here (a hard dependency: the
    suite's install provides all of them, so this only matters under a monkeypatch)."""
    return all(importlib.util.find_spec(m) for m in METHODS.get(name).requires)


def test_every_shipped_option_of_the_group_is_a_method() -> None:
    shipped = {p.stem for p in (ROOT / "conf" / "compression").glob("*.yaml")}
    assert shipped == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_each_method_composes_with_its_own_options_only(name: str) -> None:
    cfg = method(f"compression={name}", f"bits={default_bits(name)}")
    assert isinstance(cfg, METHODS.get(name)) and cfg.name == name
    assert set(compose_config([f"compression={name}"]).compression.keys()) == options(name) | {
        "name"
    }


@pytest.mark.parametrize("name", NAMES)
def test_an_option_the_method_lacks_is_refused_when_composed(name: str) -> None:
    foreign = sorted(set().union(*(options(n) for n in NAMES)) - options(name))
    for option in foreign[:3]:
        with pytest.raises(QfeatError, match=rf"bad configuration: .*{option}"):
            compose_config([f"compression={name}", f"compression.{option}=1"])
    with pytest.raises(QfeatError, match=rf"compression={name} has no option {foreign[0]}"):
        method(f"compression={name}", f"+compression.{foreign[0]}=1")


@pytest.mark.parametrize("name", NAMES)
def test_a_key_holds_only_what_the_method_uses(name: str, tmp_path) -> None:
    """The sweep axes enter a key only through the method's own options: a method without a
    `bits` option gives one job for any bits, and likewise for sparsity."""

    def key(*overrides: str) -> str:
        return plan_job(
            compose_config([f"compression={name}", f"out_root={tmp_path}", *overrides])
        ).key

    cfg = METHODS.get(name)
    # magnitude_matched's baseline, noise's match and mixed's default part take ${bits}
    uses_bits = cfg.bit_choices is not None or issubclass(
        cfg, (MagnitudeMatchedConfig, MixedConfig, NoiseConfig)
    )
    choices = cfg.bit_choices or (3, 4)
    if 3 in choices and 4 in choices:
        assert (key("bits=3") == key("bits=4")) == (not uses_bits)
    uses_sparsity = "sparsity" in options(name)
    assert (key("sparsity=0.3") == key("sparsity=0.6")) == (not uses_sparsity)


def test_the_two_probe_sweeps_are_one_job_each(tmp_path) -> None:
    """`compression=nf4 compression.symmetric=true,false` has no such option to sweep, and
    `compression=wanda bits=3,4` measures one model."""
    with pytest.raises(QfeatError, match="symmetric"):
        compose_config(["compression=nf4", "compression.symmetric=true"])
    keys = {
        plan_job(compose_config(["compression=wanda", f"bits={b}", f"out_root={tmp_path}"])).key
        for b in (3, 4)
    }
    assert len(keys) == 1


@pytest.mark.parametrize("name", [n for n in NAMES if METHODS.get(n).bit_choices])
def test_unsupported_bits_name_the_supported_ones(name: str) -> None:
    supported = METHODS.get(name).bit_choices
    bad = next(b for b in range(1, 18) if b not in supported)
    with pytest.raises(
        QfeatError, match=rf"compression={name} supports bits in .*; got bits={bad}"
    ):
        method(f"compression={name}", f"bits={bad}")


@pytest.mark.parametrize("name", [n for n in NAMES if METHODS.get(n).requires])
def test_missing_library_names_the_pip_line(name: str, monkeypatch) -> None:
    missing = METHODS.get(name).requires[0]
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda mod, *a: None if mod == missing else real(mod, *a)
    )
    pip = libraries.pip_line(missing)
    with pytest.raises(QfeatError, match=rf"compression={name} needs `pip install {pip}`"):
        method(f"compression={name}", f"bits={default_bits(name)}")


@pytest.mark.parametrize("name", NAMES)
def test_every_method_library_is_installed(name: str) -> None:
    """Hard dependencies: a broken install fails here, never as skipped tests."""
    assert installed(name), (
        f"{name} needs {[libraries.pip_line(m) for m in METHODS.get(name).requires]}"
    )


def test_matched_baseline_is_a_method_with_the_same_targets() -> None:
    cfg = method("compression=magnitude_matched", "bits=5")
    assert cfg.baseline.name == "rtn" and cfg.baseline.bits == 5 and cfg.weight_bits == 5
    gptq = method("compression=magnitude_matched", "compression@compression.baseline=gptq")
    assert gptq.baseline.name == "gptq" and gptq.needs_calibration
    with pytest.raises(QfeatError, match="a matched pair compresses the same weights"):
        method("compression=magnitude_matched", "compression.targets=[mlp]")
    with pytest.raises(QfeatError, match="baseline must be a compressing method"):
        method("compression=magnitude_matched", "compression@compression.baseline=none")
