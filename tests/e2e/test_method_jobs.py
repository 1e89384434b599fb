"""Every compression method in a real job on the embedded model: alone, and as the baseline of
magnitude_matched, where its measurement must equal its own job's."""

from dataclasses import asdict, fields

import pytest

from conftest import SMALL, bits_of, compose_config
from sweep.config.compression import METHODS, TargetedConfig
from sweep.job.run import run
from sweep.results.summary import ClassFractions

NAMES = METHODS.names()
# A job whose features are measured and little else: 8 sequences, no extras.
TINY = [
    *SMALL,
    "data.n_sequences=8",
    "eval.sliding_window_stride=null",
    "calibration_sequences=4",
    "fidelity.max_features=0",
    "eval.contexts_k=0",
    "eval.sae_fit_sequences=0",
]
COUNTS = [f.name for f in fields(ClassFractions)]


def job(name: str, out):
    cfg = compose_config([*TINY, f"compression={name}", f"bits={bits_of(name)}", f"out_root={out}"])
    return run(cfg).summary


@pytest.mark.parametrize("name", NAMES)
def test_one_tiny_job_per_method(name: str, tmp_path) -> None:
    summary = job(name, tmp_path)
    m = summary.metrics
    assert summary.compression == name and m.n_active > 0
    assert summary.bits == METHODS.get(name).fixed_bits or summary.bits in (bits_of(name), None)
    if name == "gguf":  # llama.cpp's policy also quantizes the embedding and the unembedding
        assert m.n_compressed_matrices in (16, 17, 18)
    else:
        assert m.n_compressed_matrices == (0 if name == "none" else 16)
    assert m.frac_survived + m.frac_blurred + m.frac_destroyed == pytest.approx(1.0)
    if name == "none":
        assert m.frac_survived == 1.0 and m.kl_mean == 0.0 and m.delta_ppl == 0.0
    else:
        assert -1 <= m.mean_r < 1 and m.kl_mean > 0


@pytest.mark.parametrize("name", ["hqq", "quanto", "rtn", "gptq"])
def test_fewer_bits_damage_more_features(name: str, tmp_path) -> None:
    frac = {}
    for bits in (2, 8):
        cfg = compose_config([*TINY, f"compression={name}", f"bits={bits}", f"out_root={tmp_path}"])
        frac[bits] = run(cfg).summary.metrics.frac_survived
    assert frac[2] < frac[8]


BASELINES = [  # what compression.baseline accepts: a method compressing selected matrices
    n for n in NAMES if issubclass(METHODS.get(n), TargetedConfig) and n != "magnitude_matched"
]


@pytest.mark.parametrize("name", BASELINES)
def test_a_matched_baseline_equals_the_methods_own_job(name: str, tmp_path) -> None:
    """magnitude_matched measures its baseline in the same pass as the pruned model: the
    baseline's class counts, r statistics, perplexity and KL are its own job's."""
    own = job(name, tmp_path / "own").metrics
    matched = compose_config(
        [
            *TINY,
            "compression=magnitude_matched",
            f"compression@compression.baseline={name}",
            "compression.max_steps=4",
            f"bits={bits_of(name)}",
            f"out_root={tmp_path / 'matched'}",
        ]
    )
    summary = run(matched).summary
    baseline = asdict(summary.matched.baseline)
    assert summary.matched.baseline_method == name
    for key in COUNTS:
        assert baseline[key] == pytest.approx(getattr(own, key), rel=1e-12, abs=1e-12), key
    for key in ("q_ppl", "kl_mean", "q_loss"):
        assert baseline[key] == pytest.approx(getattr(own, key), rel=1e-12), key
