"""The shipped configs compose; bad input fails with one clear line before any heavy work."""

import itertools
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from sae_lens import StandardSAE, StandardSAEConfig

import sweep.job.compress
import sweep.job.stages
from conftest import ROOT, SMALL, compose_config, default_sae_dir
from sweep.base.errors import QfeatError
from sweep.config.compose import CONF_DIR
from sweep.config.schema import register_configs
from sweep.config.validate import validate
from sweep.inputs.saes import check_sae_fits
from sweep.job.run import run

HEAVY = ("torch", "transformers", "sae_lens", "llmcompressor", "bitsandbytes", "torchao", "hqq")


@pytest.fixture
def no_heavy_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any model, tokenizer or SAE load fail loudly, proving validation happened first."""

    def boom(*args, **kwargs):
        raise AssertionError("heavy work started before validation")

    for name in ("load_hf_model", "load_tokenizer", "load_saes"):
        monkeypatch.setattr(sweep.job.stages, name, boom)


def sweep_points(preset: str) -> list[list[str]]:
    """Every job's overrides of an `experiment/` preset's own sweep (one list per job)."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", [f"+experiment={preset}"], return_hydra_config=True)
    params = cfg.hydra.sweeper.get("params") or {}
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    axes = [
        [
            f"{o.get_key_element()}={'null' if v is None else v}"
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
    if preset == "attribution":
        assert len(points) == 50


def test_shipped_config_composes_and_validates() -> None:
    cfg = compose_config()
    validate(cfg)
    assert (cfg.model.name, cfg.compression.name, cfg.bits) == ("tiny", "rtn", 4)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("bits=1", r"compression=rtn supports bits in 2\.\.16; got bits=1"),
        ("bits=17", r"supports bits in 2\.\.16; got bits=17"),
        (
            "model.name=gpt5",
            "unknown model 'gpt5'; choose one of: gemma-2-2b, hf, pythia-70m, tiny",
        ),
        ("sae.name=nope", "unknown sae 'nope'"),
        ("compression.granularity=diagonal", "granularity='diagonal'; use channel, tensor"),
        ("compression.targets=[embeddings]", r"compression.targets=\['embeddings'\]; choose"),
        ("compression.blocks=[1,4]", r"selects blocks \[4\], but the model has 4 \(0..3\)"),
        ("runtime.device=tpu", "runtime.device='tpu' is not a device"),
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
    with pytest.raises(QfeatError, match=r"bad configuration: .*Available options"):
        compose_config(["compression=zip"])


def test_wrong_type_is_refused_by_the_schema() -> None:
    with pytest.raises(QfeatError, match="bad configuration"):
        compose_config(["bits=four"])


def test_validation_imports_no_model_stack(tmp_path: Path) -> None:
    """Planning a job (validate, key) imports none of the heavy libraries: a bad value is
    refused, and a complete job answered, in the time Python and Hydra take to start."""
    code = (
        "import sys; from sweep.config.compose import compose_config; "
        "from sweep.job.keys import plan_job; "
        f"plan_job(compose_config(['out_root={tmp_path}'])); "
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


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


def test_tiny_sae_layer_the_build_lacks_is_refused_before_work(small_cfg) -> None:
    small_cfg.sae.layers = [2, 7]
    with pytest.raises(QfeatError, match=r"has no layer 7; the embedded build has it at layers"):
        validate(small_cfg)


def test_local_sae_layer_must_match_its_hook(small_cfg) -> None:
    small_cfg.sae.name = "local"
    small_cfg.sae.path = str(default_sae_dir())
    small_cfg.sae.layer = 1
    with pytest.raises(QfeatError, match="exists for layer 2 only; layer 1 asked for"):
        run(small_cfg)


def test_nan_weights_fail_naming_the_layer_and_write_no_result(small_cfg, monkeypatch) -> None:
    def poison(model, cfg, calibration=None) -> int:
        with torch.no_grad():
            model.gpt_neox.layers[0].mlp.dense_4h_to_h.weight.fill_(float("nan"))
        return 1

    monkeypatch.setattr(sweep.job.compress, "compress_model", poison)
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
