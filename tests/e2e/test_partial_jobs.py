"""Partial compression in real jobs: blocks after an SAE's layer cannot reach it (every feature
keeps r = 1 exactly), and llm-compressor's methods change exactly the selected matrices."""

import copy

import pytest
import torch
from test_method_jobs import TINY
from tiny_compressed import fp_and_calibration, method_cfg

from conftest import compose_config
from sweep.compressors import compress_model, target_linears
from sweep.config.validate import method_config
from sweep.job.run import run


@pytest.mark.parametrize("name", ["rtn", "gptq"])
def test_blocks_after_the_sae_layer_leave_every_feature_exact(name: str, tmp_path) -> None:
    cfg = compose_config(
        [*TINY, f"compression={name}", "bits=2", "compression.blocks=[3]", f"out_root={tmp_path}"]
    )
    assert cfg.sae.layer == 2
    summary = run(cfg).summary
    m = summary.metrics
    assert m.n_compressed_matrices == 4 and m.n_active > 0
    assert m.n_survived == m.n_active and m.mean_r == 1.0 and m.median_r == 1.0
    assert m.kl_mean > 0  # block 3 was compressed: the output moved, the SAE's input did not


@pytest.mark.parametrize("name", ["gptq", "awq", "w8a8", "wanda", "sparsegpt", "fp8"])
def test_llmc_partial_compression_changes_exactly_the_selection(name: str) -> None:
    """Only the selected matrices change (AWQ and SmoothQuant also rescale the norm that feeds
    them, which is part of their method); every other parameter is bit-identical to FP."""
    fp, calibration = fp_and_calibration()
    model = copy.deepcopy(fp)
    cfg = method_config(
        method_cfg(
            name,
            "bits=4",
            "compression.targets=[mlp_in]",
            "compression.blocks=[1]",
            *(["compression.group_size=32"] if name in ("gptq", "awq") else []),
        )
    )
    assert compress_model(model, cfg, calibration[:4]) == 1
    (chosen,) = [n for n, _ in target_linears(fp, ["mlp_in"], [1])]
    rescaled = {"gpt_neox.layers.1.post_attention_layernorm"} if name in ("awq", "w8a8") else set()
    before = fp.state_dict()
    touched = set()
    for key, value in model.state_dict().items():
        owner = key.rsplit(".", 1)[0]
        if key not in before or not torch.equal(value, before[key]):
            touched.add(owner)
    # the selected layer was compressed: new weights, or quantization parameters beside them
    assert chosen in touched
    assert touched <= {chosen, *rescaled}, f"{name} changed {sorted(touched - {chosen})}"
