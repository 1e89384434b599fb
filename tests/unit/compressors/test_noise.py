"""The matched-noise control: each target matrix's error norm equals the matched method's, the
noise is seeded, and it is not the method's own error."""

import copy

import pytest
import torch

from conftest import method
from sweep.base.errors import QfeatError
from sweep.compressors import compress_model, target_linears

MATCHES = [
    ("rtn", "bits=4"),
    ("hqq", "bits=4"),
    ("quanto", "bits=4"),
    ("magnitude", "sparsity=0.5"),
]


def target_weights(model) -> dict[str, torch.Tensor]:
    """float64 CPU copies of the target weights."""
    return {
        n: m.weight.detach().double().clone()
        for n, m in target_linears(model, ["attention", "mlp"])
    }


def errors(model, fp: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each target's W' − W against the FP weights."""
    return {n: w - fp[n] for n, w in target_weights(model).items()}


def noisy(tiny, *overrides: str):
    """A copy of the tiny model with `compression=noise` applied."""
    model = copy.deepcopy(tiny.hf)
    compress_model(model, method("compression=noise", *overrides))
    return model


@pytest.mark.parametrize("match, axis", MATCHES)
def test_each_matrix_gets_the_error_norm_of_its_match(tiny, match: str, axis: str) -> None:
    fp = target_weights(tiny.hf)
    compressed = copy.deepcopy(tiny.hf)
    compress_model(compressed, method(f"compression={match}", axis))
    target = errors(compressed, fp)
    got = errors(noisy(tiny, f"compression@compression.match={match}", axis), fp)
    assert set(got) == set(target) and len(got) > 4
    for name, e in got.items():
        want = float(target[name].norm())
        assert want > 0 and abs(float(e.norm()) - want) <= 1e-6 * want, name
        cosine = float((e * target[name]).sum() / (e.norm() * target[name].norm()))
        assert abs(cosine) < 0.2, f"{name}: the noise follows the method's own error"


def test_seeded_noise_differs_between_seeds_and_repeats_within_one(tiny) -> None:
    fp = target_weights(tiny.hf)
    a = errors(noisy(tiny, "bits=4", "compression.seed=0"), fp)
    again = errors(noisy(tiny, "bits=4", "compression.seed=0"), fp)
    b = errors(noisy(tiny, "bits=4", "compression.seed=1"), fp)
    for name in a:
        assert torch.equal(a[name], again[name])
        assert not torch.allclose(a[name], b[name])
        assert abs(float(a[name].norm()) - float(b[name].norm())) <= 1e-6 * float(a[name].norm())


def test_noise_matches_only_methods_that_rewrite_weights_in_place() -> None:
    assert method("compression=noise", "bits=5").weight_bits == 5
    for other in ("gptq", "nf4", "none", "magnitude_matched", "noise"):
        with pytest.raises(QfeatError, match=r"compression\.match must be a method"):
            method("compression=noise", f"compression@compression.match={other}")
    with pytest.raises(QfeatError, match="the noise goes on the weights it matches"):
        method("compression=noise", "compression.targets=[mlp]")
