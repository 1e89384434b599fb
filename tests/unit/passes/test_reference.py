"""The FP reference cache: exact round trips, corruption detection, colliding root checks (the
process race: tests/e2e/test_reference_race.py)."""

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from helpers import dense_rows, make_reference, sparse_batches
from sweep.base.errors import QfeatError
from sweep.passes.reference import SparseCodes
from sweep.passes.reference_cache import (
    MANIFEST_FILE,
    TENSORS_FILE,
    check_cache_root,
    load_or_compute,
    load_reference,
    reference_key,
    save_reference,
)


def test_sparse_codes_round_trip_exactly() -> None:
    batches = sparse_batches()
    dense = torch.cat(batches)
    codes = SparseCodes.concat([SparseCodes.from_dense(b) for b in batches])
    assert len(codes.values) == int((dense != 0).sum())
    assert torch.equal(dense_rows(codes, 0, len(dense)), dense)
    assert torch.equal(dense_rows(codes, 4, 9), dense[4:9])


def test_save_load_round_trip(tmp_path: Path) -> None:
    ref = make_reference()
    save_reference(tmp_path / "e", ref)
    back = load_reference(tmp_path / "e")
    assert back is not None and back.sliding_ppl == 12.5
    for name in ("nll", "topk_logprobs", "topk_ids"):
        assert torch.equal(getattr(back, name), getattr(ref, name))
    (hook,) = ref.codes
    assert torch.equal(dense_rows(back.codes[hook], 0, 13), dense_rows(ref.codes[hook], 0, 13))


@pytest.mark.parametrize("damage", ["truncate", "flip", "no_manifest", "format"])
def test_corrupt_entry_is_detected_and_recomputed(tmp_path: Path, damage: str) -> None:
    save_reference(tmp_path / "k", make_reference())
    tensors, manifest = tmp_path / "k" / TENSORS_FILE, tmp_path / "k" / MANIFEST_FILE
    data = tensors.read_bytes()
    if damage == "truncate":
        tensors.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        tensors.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    elif damage == "no_manifest":
        manifest.unlink()
    else:
        manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "format": -1}))
    assert load_reference(tmp_path / "k") is None
    calls = []
    _ref, computed = load_or_compute(
        str(tmp_path), "k", lambda: calls.append(1) or make_reference(1)
    )
    assert computed and calls == [1]
    assert load_reference(tmp_path / "k") is not None


def test_different_tokens_or_settings_never_share_a_key() -> None:
    tokens = torch.arange(20).reshape(2, 10)
    base = reference_key({"model": "tiny", "kl_top_k": 8}, tokens)
    assert base == reference_key({"kl_top_k": 8, "model": "tiny"}, tokens.clone())
    assert base != reference_key({"model": "tiny", "kl_top_k": 8}, tokens.flip(0))
    assert base != reference_key({"model": "tiny", "kl_top_k": 9}, tokens)


def test_unwritable_cache_root_fails_early(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(QfeatError, match="cannot write the FP reference cache"):
        check_cache_root(str(blocker / "cache"))
    check_cache_root(None)


def test_jobs_checking_one_cache_root_at_once_do_not_collide(tmp_path: Path) -> None:
    """The jobs of a sweep start together and each probe the shared root (CI once saw one
    job fail because another had removed a probe file of the same name)."""
    root = str(tmp_path / "cache")

    def probe_often(_: int) -> None:
        for _ in range(200):
            check_cache_root(root)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(probe_often, range(8)))
    assert list(Path(root).iterdir()) == []
