"""The real-model path (Pythia-70M, Gemma-2-2B, SAE-Lens releases) run offline end to end.

tests/hub_fixture.py puts tiny checkpoints and SAEs under the real repo ids into a temporary hub
cache; the jobs then run through launch.py in a subprocess with HF_HUB_OFFLINE=1 and
HF_HOME/HF_HUB_CACHE pointing at it (huggingface_hub reads those once, at import).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from transformer_lens import loading_from_pretrained as tl_loading
from transformers import Gemma2Config

from conftest import ROOT, SUBPROCESS_TIMEOUT_S, compose_config
from hub_fixture import GEMMA_REPO, build_hub_cache, sample_text
from sweep.base.errors import QfeatError
from sweep.config.schema import register_configs
from sweep.config.validate import validate
from sweep.inputs.saes import load_saes, release_layers
from tl_oracle import reconcile_config

TINY_JOB = [
    "data=local",
    "data.n_sequences=8",
    "data.seq_len=32",
    "eval.sliding_window_stride=null",
    "runtime.device=cpu",
    "runtime.batch_size=8",
    "runtime.progress=false",
    "survival.min_active_tokens=3",
    "wandb.mode=disabled",
]


@pytest.fixture(scope="session")
def hub(tmp_path_factory) -> Path:
    """HF_HOME with a hub cache of tiny stand-ins, and a local text file: built once."""
    home = tmp_path_factory.mktemp("hf_home")
    build_hub_cache(home / "hub")
    (home / "text.txt").write_text(sample_text(4000, seed=1))
    return home


def offline_env(monkeypatch, home: Path) -> dict[str, str]:
    """The environment of an offline job reading the cache under `home`."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setenv("PYTHONPATH", f"{ROOT}{os.pathsep}{ROOT / 'tests'}")
    return dict(os.environ)


def python(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """`python ARGS` from the repository root in `env`, bounded by the suite's timeout."""
    cmd = [sys.executable, *args]
    return subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S
    )


def launch(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """`python launch.py ARGS` from the repository root."""
    return python(["launch.py", *args], env)


def job_frames(out: Path) -> dict[str, pd.DataFrame]:
    """features.parquet of every job under `out`, keyed by compression name."""
    frames = {}
    for summary in out.glob("*/jobs/*/summary.json"):
        meta = json.loads(summary.read_text())
        assert meta["status"] == "complete"
        frames[meta["compression"]] = pd.read_parquet(summary.parent / "features.parquet")
    return frames


def check_results(frames: dict[str, pd.DataFrame], n_saes: int) -> None:
    """r within [-1, 1]; under compression=none every active feature has r > 0.999."""
    assert set(frames) == {"none", "rtn"}
    for frame in frames.values():
        assert frame["sae"].nunique() == n_saes
        r = frame["r"].dropna()
        assert len(r) and r.between(-1.0, 1.0).all()
    none = frames["none"]
    assert none["active"].sum() > 0
    assert (none.loc[none["active"], "r"] > 0.999).all()


@pytest.mark.parametrize(
    ("model", "sae", "layers", "n_saes"),
    [
        ("pythia-70m", "pythia-70m-res-sm", "sae.layers=[1,3]", 2),
        ("gemma-2-2b", "gemma-scope-2b-res-16k", "sae.layer=1", 1),
    ],
)
def test_real_config_runs_offline(hub, tmp_path, monkeypatch, model, sae, layers, n_saes):
    """The shipped model/SAE configs load from the hub cache offline and give sane results."""
    env = offline_env(monkeypatch, hub)
    args = ["-m", f"model={model}", f"sae={sae}", layers, "compression=none,rtn", *TINY_JOB]
    args += [f"data.path={hub / 'text.txt'}", f"out_root={tmp_path}"]
    proc = launch(args, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    check_results(job_frames(tmp_path), n_saes)


def test_hf_hooks_equal_transformer_lens(hub, monkeypatch):
    """The measured HF forward hooks read what TransformerLens computes, within torch.testing's
    float32 tolerance (atol 1e-5, rtol 1.3e-6) for log-probs and activations."""
    env = offline_env(monkeypatch, hub)
    code = (
        "import hub_fixture as h;"
        "print(*h.conversion_gap('gemma-2-2b', 1), *h.conversion_gap('pythia-70m', 3))"
    )
    proc = python(["-c", code], env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    gaps = list(map(float, proc.stdout.split()[-6:]))
    print("HF hook vs TL / tolerance (gemma logp, pre, post; pythia logp, pre, post):", gaps)
    assert max(gaps) <= 1.0, gaps


def test_pile_source_reads_cached_dataset(hub, monkeypatch):
    """data=pile's hub source streams the cached dataset offline, bounded and in order."""
    env = offline_env(monkeypatch, hub)
    code = (
        "from conftest import compose_config; from sweep.inputs.data import hub_dataset_text;"
        "t = hub_dataset_text(compose_config(['data=pile']).data);"
        "print(len(t.split(chr(10) * 2)), t.split(chr(10))[0])"
    )
    proc = python(["-c", code], env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    n_docs, first = proc.stdout.strip().splitlines()[-1].split(" ", 1)
    assert int(n_docs) == 500 and first == sample_text().split("\n")[0]


def test_missing_cache_is_one_sentence(tmp_path, monkeypatch):
    """No cached files and no hub: one line naming the cache, HF_HUB_OFFLINE and what to do."""
    empty = tmp_path / "empty_home"
    (empty / "hub").mkdir(parents=True)
    text = tmp_path / "t.txt"
    text.write_text(sample_text(500))
    env = offline_env(monkeypatch, empty)
    args = ["model=pythia-70m", "sae=pythia-70m-res-sm", *TINY_JOB, f"data.path={text}"]
    proc = launch([*args, f"out_root={tmp_path}"], env)
    assert proc.returncode == 2
    errors = [line for line in (proc.stdout + proc.stderr).splitlines() if "qfeat: error" in line]
    assert len(errors) == 1 and "Traceback" not in proc.stderr
    for part in ("EleutherAI/pythia-70m-deduped", "HF_HUB_OFFLINE=1", "hf download", "HF_HOME"):
        assert part in errors[0]


def test_unknown_layer_lists_valid_layers():
    """A layer the release lacks fails before any download, listing the valid ones."""
    cfg = compose_config(["model=pythia-70m", "sae=pythia-70m-res-sm", "sae.layer=9"])
    with pytest.raises(QfeatError, match=r"valid layers: \[0, 1, 2, 3, 4, 5\]"):
        load_saes(cfg.sae, torch.device("cpu"))
    gemma = release_layers("gemma-scope-2b-pt-res-canonical", "layer_{layer}/width_16k/canonical")
    assert list(gemma) == list(range(26))


def test_unknown_release_suggests_names():
    """A mistyped release names the close valid ones."""
    with pytest.raises(QfeatError, match="pythia-70m-deduped-res-sm") as err:
        release_layers("pythia-70m-deduped-res-smm", "blocks.{layer}.hook_resid_post")
    assert "\n" not in str(err.value)


def test_real_gemma_config_is_left_alone():
    """For the real Gemma-2-2B config, TL's built-in config is used unchanged."""
    real = Gemma2Config(
        vocab_size=256000,
        hidden_size=2304,
        intermediate_size=9216,
        num_hidden_layers=26,
        num_attention_heads=8,
        num_key_value_heads=4,
        head_dim=256,
        max_position_embeddings=8192,
        sliding_window=4096,
    )
    tl_cfg = tl_loading.get_pretrained_model_config(
        GEMMA_REPO, hf_cfg=real.to_dict(), fold_ln=True, device="cpu"
    )
    assert reconcile_config(tl_cfg, real) is tl_cfg


@pytest.mark.parametrize("preset", ["paper_pythia", "paper_gemma"])
def test_paper_presets_compose(preset):
    """Each paper preset composes, validates, and sweeps 5 bit-widths × 2 methods = 10 jobs."""
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", [f"+experiment={preset}"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    sizes = [len(list(o.sweep_iterator())) if o.is_sweep_override() else 1 for o in parsed]
    assert sorted(sizes) == [1, 2, 5]
    for override in (
        "bits=4",
        "compression=magnitude_matched",
        f"sae.layers={params['sae.layers']}",
    ):
        job = compose_config([f"+experiment={preset}", override])
        validate(job)
        assert job.data.source == "hub_dataset"


def frames_by_sae(out: Path) -> dict[str, pd.DataFrame]:
    """Every job's features under `out`, split by SAE hook (each job has distinct hooks)."""
    frames = {}
    for features in out.glob("*/jobs/*/features.parquet"):
        for hook, part in pd.read_parquet(features).groupby("sae"):
            assert hook not in frames
            frames[hook] = part.reset_index(drop=True)
    return frames


def test_each_sae_of_a_multi_sae_job_equals_its_single_sae_job(hub, tmp_path, monkeypatch):
    """One forward feeds several SAEs: each SAE's features equal those of a job measuring that
    SAE alone (so no SAE is fed another layer's activations)."""
    env = offline_env(monkeypatch, hub)
    common = ["model=pythia-70m", "sae=pythia-70m-res-sm", "compression=rtn", "bits=3", *TINY_JOB]
    common += [f"data.path={hub / 'text.txt'}", "fidelity.max_features=0"]
    multi = launch([*common, "sae.layers=[1,3]", f"out_root={tmp_path / 'multi'}"], env)
    assert multi.returncode == 0, multi.stderr[-3000:]
    single = launch(["-m", *common, "sae.layer=1,3", f"out_root={tmp_path / 'single'}"], env)
    assert single.returncode == 0, single.stderr[-3000:]
    together, alone = frames_by_sae(tmp_path / "multi"), frames_by_sae(tmp_path / "single")
    assert (
        sorted(together)
        == sorted(alone)
        == [
            "blocks.1.hook_resid_post",
            "blocks.3.hook_resid_post",
        ]
    )
    for hook, frame in together.items():
        assert (frame["active"] == alone[hook]["active"]).all() and frame["active"].any()
        diff = (frame["r"] - alone[hook]["r"]).abs()[frame["active"]]
        assert diff.max() < 1e-12, (hook, diff.max())
    # the two SAEs see different activations: their features are not the same numbers
    first, second = together.values()
    assert not first["fp_mean"].equals(second["fp_mean"])


def test_audit_with_a_release_sae_and_a_shipped_model_name(hub, tmp_path, monkeypatch):
    """qfeat-audit base=<shipped model name> sae=<release:sae_id> data=…, offline: the audited
    r equals the in-sweep job of the same compression."""
    env = offline_env(monkeypatch, hub)
    data = ["data=local", f"data.path={hub / 'text.txt'}", *TINY_JOB[1:]]
    exporting = ["model=pythia-70m", "compression=rtn", "bits=3", *data]
    export = python(["-m", "sweep.cli.export", str(tmp_path / "ckpt"), *exporting], env)
    assert export.returncode == 0, export.stderr[-3000:]
    sae = "sae=pythia-70m-deduped-res-sm:blocks.3.hook_resid_post"
    fields = ["base=pythia-70m", f"candidate={tmp_path / 'ckpt'}", sae]
    audit = python(["-m", "sweep.cli.audit", *fields, *data, f"out_root={tmp_path / 'audit'}"], env)
    assert audit.returncode == 0, audit.stderr[-3000:]
    assert "active features:" in audit.stdout and "most damaged features" in audit.stdout
    job = ["model=pythia-70m", "sae=pythia-70m-res-sm", "sae.layer=3", "compression=rtn"]
    swept = launch([*job, "bits=3", *data, f"out_root={tmp_path / 'sweep'}"], env)
    assert swept.returncode == 0, swept.stderr[-3000:]
    audited, in_sweep = frames_by_sae(tmp_path / "audit"), frames_by_sae(tmp_path / "sweep")
    hook = "blocks.3.hook_resid_post"
    diff = (audited[hook]["r"] - in_sweep[hook]["r"]).abs()[audited[hook]["active"]]
    assert audited[hook]["active"].any() and diff.max() < 1e-6
