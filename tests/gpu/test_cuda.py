"""The GPU tier: every path that only runs, or only runs differently, on CUDA. Skips without
CUDA, saying so; `pytest -m gpu` on a GPU machine runs it (docs/cluster.md)."""

import re
import subprocess
import sys

import pandas as pd
import pytest
import torch

from conftest import ROOT, SMALL, SUBPROCESS_TIMEOUT_S, bits_of, compose_config
from sweep.config.compression import METHODS
from sweep.config.locations import model_path
from sweep.inputs.hooked import HookedLM
from sweep.inputs.models import load_hf_model, tl_processing
from sweep.job.keys import plan_job
from sweep.job.run import run
from sweep.results.files import FEATURES_FILE
from tl_oracle import to_hooked

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device here: the gpu tier needs one"
)
CUDA = [*SMALL, "runtime.device=cuda"]


def cuda_job(out, *overrides: str):
    """A job on CUDA; its result and where its files are."""
    cfg = compose_config([*CUDA, f"out_root={out}", *overrides])
    return run(cfg), plan_job(cfg).out


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_runs_a_job_on_cuda(name: str, tmp_path) -> None:
    summary = cuda_job(tmp_path, f"compression={name}", f"bits={bits_of(name)}")[0].summary
    m = summary.metrics
    assert summary.device.startswith("cuda") and m.n_active > 0
    assert m.frac_survived + m.frac_blurred + m.frac_destroyed == pytest.approx(1.0)
    assert (m.frac_survived == 1.0) if name == "none" else (-1 <= m.mean_r < 1)


def test_llm_int8_outlier_path_runs_on_cuda() -> None:
    """bitsandbytes' LLM.int8 keeps input columns above its threshold in 16 bits (the mixed
    decomposition exists only on CUDA): an outlier column changes the output relative to the
    same layer with the decomposition off, and brings it closer to the fp16 product."""
    import bitsandbytes as bnb

    torch.manual_seed(0)
    weight = torch.randn(64, 128, dtype=torch.float16)
    x = torch.randn(8, 128, dtype=torch.float16, device="cuda")
    x[:, 3] = 40.0  # far above the 6.0 threshold
    outputs = {}
    for threshold in (6.0, 0.0):
        layer = bnb.nn.Linear8bitLt(
            128, 64, bias=False, has_fp16_weights=False, threshold=threshold
        )
        layer.weight = bnb.nn.Int8Params(weight.clone(), requires_grad=False)
        outputs[threshold] = layer.cuda()(x).float()
    exact = (x @ weight.cuda().T).float()
    assert not torch.equal(outputs[6.0], outputs[0.0])
    assert (outputs[6.0] - exact).abs().max() < (outputs[0.0] - exact).abs().max()


def test_hooked_forward_equals_transformer_lens_on_cuda(tiny) -> None:
    device = torch.device("cuda")
    hf = load_hf_model(tiny.cfg.model, device)
    processing = tl_processing(tiny.sae.cfg.metadata.model_from_pretrained_kwargs)
    tl = to_hooked(hf, model_path(tiny.cfg.model), processing, device)
    tokens = tiny.tokens[:4].to(device)
    hooks = [tiny.hook, tiny.hook.replace("resid_post", "resid_pre")]
    with torch.no_grad():
        acts, logits = HookedLM.wrap(hf, processing).run(tokens, hooks)
        tl_logits, cache = tl.run_with_cache(tokens, names_filter=hooks)
    for hook in hooks:  # TF32 and other kernels: torch.testing's float32 tolerance, scaled
        torch.testing.assert_close(acts[hook], cache[hook], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(
        logits.log_softmax(-1), tl_logits.log_softmax(-1), rtol=1e-4, atol=1e-4
    )


def test_a_cuda_job_run_twice_gives_identical_features(tmp_path) -> None:
    frames = []
    for attempt in ("a", "b"):
        _, out = cuda_job(tmp_path / attempt, "bits=3")
        frames.append(pd.read_parquet(out / FEATURES_FILE))
    pd.testing.assert_frame_equal(*frames, check_exact=True)


def test_a_bfloat16_model_runs_in_bfloat16_on_cuda(tmp_path) -> None:
    summary = cuda_job(tmp_path, "model.dtype=bfloat16", "bits=4")[0].summary
    assert summary.metrics.n_active > 0 and summary.config["model"]["dtype"] == "bfloat16"


def test_local_launcher_gives_each_job_its_own_gpu(tmp_path) -> None:
    n = torch.cuda.device_count()
    bits = ",".join(str(b) for b in range(2, 2 + max(n, 2)))
    proc = subprocess.run(
        [
            sys.executable,
            "launch.py",
            "-m",
            f"bits={bits}",
            "hydra/launcher=local",
            "hydra.launcher.gpus_per_node=1",
            *CUDA,
            f"out_root={tmp_path}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = re.findall(
        r"qfeat job #\d+ CUDA_VISIBLE_DEVICES='([^']*)'",
        "".join(p.read_text() for p in tmp_path.glob("default/logs/multirun_*/.submitit/*/*.out")),
    )
    assert len(seen) == bits.count(",") + 1
    assert all(d in {str(i) for i in range(n)} for d in seen)
