"""The GGUF ladder on tiny: a job per type, each with llama.cpp's own forward beside qfeat's; the
log-prob gap the job reports is recomputed here from llama-cpp-python's high-level `Llama`
class (not qfeat's low-level runtime) and a plain HF forward of the file's weights; the audit
of an exported .gguf measures what the in-sweep job measured (r to 1e-6)."""

from pathlib import Path

import llama_cpp
import numpy as np
import pandas as pd
import pytest
import torch

from conftest import FAST, compose_config, default_sae_dir
from sweep.base.paths import TINY_ASSETS
from sweep.cli.audit import main as audit_main
from sweep.cli.export import main as export_main
from sweep.inputs.data import build_token_sets
from sweep.inputs.gguf_file import bits_per_weight, load_into, tensor_infos
from sweep.inputs.models import load_hf_model, load_tokenizer
from sweep.job.keys import plan_job
from sweep.job.run import run
from sweep.results.files import DEPLOYED_FEATURES_FILE, FEATURES_FILE

LADDER = ["F32", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "IQ4_NL", "Q3_K_M", "Q2_K"]


@pytest.fixture(scope="module")
def out_root(tmp_path_factory) -> Path:
    """One results root for the ladder: the jobs share the FP reference."""
    return tmp_path_factory.mktemp("gguf_ladder")


def overrides(type_name: str, root: Path) -> list[str]:
    return [*FAST, "compression=gguf", f"compression.type={type_name}", f"out_root={root}"]


def llama_logprobs(path: Path, tokens: torch.Tensor) -> np.ndarray:
    """log p of every observed next token, by llama-cpp-python's high-level class (flash
    attention on: what the context default 'auto' chooses on a CPU)."""
    llm = llama_cpp.Llama(
        str(path),
        n_ctx=tokens.shape[1],
        n_batch=tokens.shape[1],
        n_ubatch=tokens.shape[1],
        logits_all=True,
        flash_attn=True,
        verbose=False,
    )
    out = []
    for row in tokens.tolist():
        llm.reset()
        llm.eval(row)
        logits = torch.from_numpy(np.array(llm.scores[: len(row)], dtype=np.float64))
        out.append(logits.log_softmax(-1)[:-1].gather(-1, torch.tensor(row[1:])[:, None]))
    return torch.stack(out).squeeze(-1).numpy()


@pytest.mark.parametrize("type_name", LADDER)
def test_a_ladder_job_per_type(type_name: str, out_root: Path, tmp_path: Path) -> None:
    cfg = compose_config(overrides(type_name, out_root))
    summary = run(cfg).summary
    g, m = summary.gguf, summary.metrics
    assert g is not None and g.type == type_name and g.deployed is not None
    d = g.deployed
    assert d.n_active == m.n_active and d.n_features == m.n_features
    assert m.n_compressed_matrices == (0 if type_name == "F32" else 18)
    assert (pd.read_parquet(plan_job(cfg).out / DEPLOYED_FEATURES_FILE)["active"]).any()
    # The same file, written by export (deterministic), scored independently.
    gguf_file = tmp_path / "model.gguf"
    assert export_main([str(gguf_file), *overrides(type_name, out_root)]) == 0
    assert g.bits_per_weight == pytest.approx(bits_per_weight(tensor_infos(gguf_file)))
    tokens = build_token_sets(cfg.data, load_tokenizer(cfg.model))[0]
    model = load_hf_model(cfg.model, torch.device("cpu"))
    load_into(model, gguf_file)
    with torch.no_grad():
        hf = model(tokens).logits.double().log_softmax(-1)[:, :-1]
    hf = hf.gather(-1, tokens[:, 1:, None]).squeeze(-1).numpy()
    gap = np.abs(llama_logprobs(gguf_file, tokens) - hf)
    assert d.logp_gap_mean == pytest.approx(gap.mean(), rel=1e-3, abs=1e-6)
    assert d.logp_gap_max == pytest.approx(gap.max(), rel=1e-3, abs=1e-6)
    assert d.logp_gap_mean > 0  # llama.cpp is not qfeat's forward, even at F32


def test_audit_of_an_exported_gguf_equals_the_in_sweep_job(out_root: Path, tmp_path: Path):
    job = overrides("Q4_K_M", out_root)
    gguf_file = tmp_path / "tiny-Q4_K_M.gguf"
    assert export_main([str(gguf_file), *job]) == 0
    fields = [f"base={TINY_ASSETS / 'lm'}", f"candidate={gguf_file}", f"sae={default_sae_dir()}"]
    assert audit_main([*fields, *FAST, f"out_root={tmp_path / 'audit'}"]) == 0
    (audit_dir,) = (tmp_path / "audit" / "audit" / "jobs").glob("*/")
    cfg = compose_config(job)
    sweep_dir = plan_job(cfg).out
    run(cfg)
    for name in (FEATURES_FILE, DEPLOYED_FEATURES_FILE):
        audited, swept = pd.read_parquet(audit_dir / name), pd.read_parquet(sweep_dir / name)
        assert (audited["active"] == swept["active"]).all() and audited["active"].any()
        diff = (audited["r"] - swept["r"]).abs()[audited["active"]]
        assert diff.max() < 1e-6, f"{name}: max |r_audit - r_sweep| = {diff.max():.2e}"
