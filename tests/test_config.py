"""Bad input fails with one clear line before any heavy work."""

import itertools
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from sae_lens import StandardSAE, StandardSAEConfig

import sweep.compressors.variants
import sweep.job
from conftest import CONF_DIR, ROOT, SMALL, compose_config
from sweep.errors import QfeatError
from sweep.job import run
from sweep.saes import check_sae_fits
from sweep.schema import register_configs, validate


@pytest.fixture
def no_heavy_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any model or SAE load fail loudly, proving validation happened first."""

    def boom(*args, **kwargs):
        raise AssertionError("heavy work started before validation")

    monkeypatch.setattr(sweep.job, "load_hf_model", boom)
    monkeypatch.setattr(sweep.job, "load_tokenizer", boom)


def sweep_points(preset: str) -> list[list[str]]:
    """Every job's overrides of an `experiment/` preset's own sweep (one list per job)."""
    register_configs()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", [f"+experiment={preset}"], return_hydra_config=True)
    params = cfg.hydra.sweeper.get("params") or {}
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    axes = [
        [
            f"{o.get_key_element()}={v}"
            for v in (o.sweep_iterator() if o.is_sweep_override() else [o.value()])
        ]
        for o in parsed
    ]
    return [list(point) for point in itertools.product(*axes)]


@pytest.mark.parametrize(
    "preset", sorted(p.stem for p in (ROOT / "conf/experiment").glob("*.yaml"))
)
def test_every_experiment_preset_composes_and_validates_at_every_point(preset: str) -> None:
    """Each shipped preset's grid, job by job, passes the checks a launch runs first."""
    points = sweep_points(preset)
    for point in points:
        validate(compose_config([f"+experiment={preset}", *point]))
    if preset == "tiny_families":
        assert len(points) == 18


def test_shipped_config_composes_and_validates() -> None:
    cfg = compose_config()
    validate(cfg)
    assert (cfg.model.name, cfg.compression.name, cfg.bits) == ("tiny", "rtn", 4)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("bits=1", "outside 2..16"),
        ("bits=17", "outside 2..16"),
        (
            "model.name=gpt5",
            "unknown model 'gpt5'; choose one of: gemma-2-2b, hf, pythia-70m, tiny",
        ),
        ("sae.name=nope", "unknown sae 'nope'"),
        (
            "compression.name=zip",
            "unknown compression 'zip'; choose one of: "
            "ao_fp8wo, ao_int8wo, ao_intxwo, ao_w8a8, awq, fp4, ",
        ),
        ("compression.granularity=group", "positive compression.group_size"),
        ("survival.blurred=0.95", "survival.blurred < survival.survived"),
        ("data.n_sequences=1 data.seq_len=2", "token set too small: 1 measured tokens"),
    ],
)
def test_bad_values_fail_before_loading(override: str, message: str, no_heavy_work, tmp_path):
    cfg = compose_config([*SMALL, f"out_root={tmp_path}", *override.split()])
    with pytest.raises(QfeatError, match=message):
        run(cfg)


def test_unknown_config_group_option_lists_choices() -> None:
    with pytest.raises(HydraException, match="Available options"):
        compose_config(["compression=zip"])


def test_wrong_type_is_refused_by_the_schema() -> None:
    with pytest.raises(HydraException):
        compose_config(["bits=four"])


def test_token_set_larger_than_the_text_is_refused(small_cfg) -> None:
    small_cfg.data.n_sequences = 100_000
    with pytest.raises(QfeatError, match="token set too small: data 'tiny' gives"):
        run(small_cfg)


def test_sae_that_does_not_fit_the_model_is_refused(tiny) -> None:
    def sae(d_in: int, hook: str) -> StandardSAE:
        cfg = StandardSAEConfig(d_in=d_in, d_sae=16)
        cfg.metadata.hook_name = hook
        return StandardSAE(cfg)

    with pytest.raises(QfeatError, match="does not exist in a model with 4 layers"):
        check_sae_fits(sae(tiny.model.d_model, "blocks.99.hook_resid_post"), tiny.model)
    with pytest.raises(QfeatError, match="d_in=7 but the model's d_model"):
        check_sae_fits(sae(7, tiny.hook), tiny.model)


def test_sae_layer_must_match_config(small_cfg) -> None:
    small_cfg.sae.layer = small_cfg.sae.layer + 1
    with pytest.raises(QfeatError, match="exists for layer 2 only; layer 3 asked for"):
        run(small_cfg)


def test_cli_prints_one_line_and_exits_nonzero(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "launch.py", "bits=1", f"out_root={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    errors = [
        line
        for line in proc.stderr.splitlines() + proc.stdout.splitlines()
        if "error" in line.lower()
    ]
    assert len(errors) == 1 and "bits=1 is outside 2..16" in errors[0]
    assert "Traceback" not in proc.stderr


def test_nan_weights_fail_naming_the_layer_and_write_no_result(small_cfg, monkeypatch) -> None:
    def poison(model, cfg, bits, sparsity=0.0, method=None, calibration=None) -> int:
        with torch.no_grad():
            model.gpt_neox.layers[0].mlp.dense_4h_to_h.weight.fill_(float("nan"))
        return 1

    monkeypatch.setattr(sweep.compressors.variants, "compress_model", poison)
    with pytest.raises(
        QfeatError,
        match=r"non-finite values at blocks\.\d+\.hook_resid_post in "
        r"the compressed \(rtn\) model",
    ):
        run(small_cfg)
    assert not list(Path(small_cfg.out_root).rglob("summary.json"))


@pytest.mark.parametrize(
    ("overrides", "stride"),
    [
        ([], None),
        (["+experiment=debug"], None),
        (["+experiment=paper_pythia"], 64),
        (["+experiment=paper_gemma"], 64),
    ],
)
def test_sliding_window_only_where_a_preset_needs_it(overrides, stride) -> None:
    """Sliding-window perplexity costs (seq_len − 1) / stride more windows per sequence and
    variant: off by default and in debug, on (stride 64) in the paper presets."""
    assert compose_config(overrides).eval.sliding_window_stride == stride
