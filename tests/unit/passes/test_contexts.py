"""Streaming top-k contexts equal a brute-force dense top-k over the same tokens."""

import numpy as np
import pytest
import torch

from helpers import update_contexts
from sweep.passes.contexts import Contexts
from sweep.passes.reference import SparseCodes
from sweep.passes.sparse import NonzeroFinder, Pairs


def sparse_codes(rows: int, d_sae: int, density: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    values = torch.rand(rows, d_sae, generator=g) * 5
    return values * (torch.rand(rows, d_sae, generator=g) < density)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("batch_rows", [7, 50, 400])
def test_streaming_top_k_equals_brute_force(batch_rows: int, sparse: bool) -> None:
    rows_per_seq, first, k, d_sae = 20, 1, 6, 64
    fp = sparse_codes(400, d_sae, 0.05, seed=0)
    q = (
        fp
        * (1 + 0.3 * sparse_codes(400, d_sae, 1.0, seed=1))
        * (sparse_codes(400, d_sae, 0.9, 2) > 0)
    )
    contexts, finder = Contexts.empty(d_sae, k), NonzeroFinder()
    for lo in range(0, 400, batch_rows):
        x, y = fp[lo : lo + batch_rows], q[lo : lo + batch_rows]
        if sparse:  # as the measurement pass: stored FP entries merged with compressed codes
            flat, values = SparseCodes.from_dense(x).flat(0, len(x))
            contexts.add(Pairs.merge(flat, values, y, finder), lo)
        else:
            update_contexts(contexts, x, y, lo)
    frame = contexts.frame("h", rows_per_seq, first)
    for ranked_by, ranked, other in (("fp", fp, q), ("q", q, fp)):
        for feature in range(d_sae):
            got = frame[(frame.ranked_by == ranked_by) & (frame.feature == feature)]
            got = got.sort_values("rank")
            positive = int((ranked[:, feature] > 0).sum())
            values, rows = ranked[:, feature].topk(min(k, positive))
            assert len(got) == len(values)
            act, paired = ("fp_act", "q_act") if ranked_by == "fp" else ("q_act", "fp_act")
            np.testing.assert_array_equal(got[act].to_numpy(), values.double().numpy())
            row = got.seq.to_numpy() * rows_per_seq + got.pos.to_numpy() - first
            np.testing.assert_array_equal(row, rows.numpy())
            np.testing.assert_array_equal(got[paired].to_numpy(), other[rows, feature].double())


def test_features_filter_and_silent_features() -> None:
    fp = torch.zeros(30, 4)
    fp[3, 1], fp[9, 1], fp[5, 2] = 2.0, 1.0, 4.0
    contexts = Contexts.empty(4, 3)
    update_contexts(contexts, fp, fp * 0.5, 0)
    frame = contexts.frame("h", 10, 1, features=[1])
    assert set(frame.feature) == {1}
    assert frame[frame.ranked_by == "fp"].fp_act.tolist() == [2.0, 1.0]
    assert frame[frame.ranked_by == "fp"][["seq", "pos"]].values.tolist() == [[0, 4], [0, 10]]
