"""Tests of the embedded `tiny` model: the build runs, its outputs load, and quality holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from sweep.base.paths import TINY_SAES, tiny_sae_dir, tiny_sae_layers
from sweep.tiny import ASSET_DIR, corpus, quality, stdlib
from sweep.tiny import tokenizer as tok_lib
from sweep.tiny.build import SAE_PLAN, settings_for
from sweep.tiny.heldout import MeasuredTokens, measured_tokens
from sweep.tiny.resume import Prior, file_digests, sae_key, sae_stage
from sweep.tiny.texts import gather, join
from sweep.tiny.train_sae import FAMILIES, column_quantile

REPO = Path(__file__).resolve().parents[2]
TL_KWARGS = {"fold_ln": False, "center_writing_weights": False, "center_unembed": False}
ARCHITECTURES = {"relu": "standard", "jumprelu": "jumprelu", "topk": "topk"}


def _planned(quick: bool) -> list[tuple[str, int]]:
    """The (family, layer) pairs a build trains, sorted."""
    return sorted((s.family, s.layer) for s in settings_for(quick).saes)


def _built(root: Path) -> list[tuple[str, int]]:
    """The (family, layer) pairs the build in `root` recorded in its manifest, sorted."""
    return sorted((f, layer) for f in FAMILIES for layer in tiny_sae_layers(f, root))


def _load(out: Path) -> tuple:
    """Load LM, tokenizer, the SAEs by (family, layer) and the manifest from a build directory."""
    from sae_lens import SAE
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out / "lm")
    tokenizer = AutoTokenizer.from_pretrained(out / "lm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        saes = {fl: SAE.load_from_disk(str(tiny_sae_dir(*fl, root=out))) for fl in _built(out)}
    manifest = json.loads((out / "manifest.json").read_text())
    return model, tokenizer, saes, manifest


def _check_consistent(model, tokenizer, saes: dict, manifest: dict) -> None:
    """Hook names, layers, widths and families of the SAEs agree with the LM, the manifest and
    each other: the build's plan (the default family after every block, every family after
    block 2)."""
    n_layers = model.config.num_hidden_layers
    assert {f for f, _ in saes} == set(FAMILIES) == set(TINY_SAES.values())
    assert SAE_PLAN["jumprelu"] == tuple(range(n_layers))
    for family in FAMILIES:
        layers = {layer for f, layer in saes if f == family}
        assert layers == set(SAE_PLAN[family]) and 2 in layers, family
    assert manifest["sae_layers"] == list(range(n_layers))
    for (family, layer), sae in saes.items():
        record = manifest["saes"][sae_key(family, layer)]
        assert (record["family"], record["layer"]) == (family, layer)
        assert sae.cfg.architecture() == ARCHITECTURES[family] == record["architecture"]
        assert sae.cfg.metadata.hook_name == f"blocks.{layer}.hook_resid_post"
        assert sae.cfg.metadata.hook_name == record["hook_name"]
        assert sae.cfg.d_in == model.config.hidden_size == manifest["d_model"]
        assert sae.cfg.metadata.model_name == "tiny"
        assert sae.cfg.metadata.prepend_bos is True
        assert sae.cfg.metadata.context_size == model.config.max_position_embeddings
        assert sae.cfg.metadata.model_from_pretrained_kwargs == TL_KWARGS
    assert len({sae.cfg.d_sae for sae in saes.values()}) == 1  # matched width
    assert tokenizer.bos_token_id == model.config.bos_token_id
    assert len(tokenizer) == model.config.vocab_size


def _quick_build(out: Path) -> dict:
    """`python -m sweep.tiny.build --quick --out OUT`, as a user runs it; its manifest."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run(
        [sys.executable, "-m", "sweep.tiny.build", "--quick", "--out", str(out)],
        cwd=out.parent,
        env=env,
        check=True,
        timeout=600,
        capture_output=True,
    )
    return json.loads((out / "manifest.json").read_text())


@pytest.fixture(scope="module")
def quick_builds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two quick builds from nothing into separate directories."""
    root = tmp_path_factory.mktemp("tiny")
    _quick_build(root / "a")
    _quick_build(root / "b")
    return root / "a", root / "b"


def test_quick_build_outputs_load(quick_builds: tuple[Path, Path]) -> None:
    """`python -m sweep.tiny.build --quick` runs and its outputs load with HF and SAE-Lens."""
    out = quick_builds[0]
    _check_consistent(*_load(out))
    manifest = _load(out)[3]
    assert manifest["complete"] is True and manifest["reused_stages"] == []
    for name, digest in manifest["files"].items():
        assert (out / name).is_file(), name
        assert len(digest) == 64


def test_quick_build_writes_every_family_and_layer(quick_builds: tuple[Path, Path]) -> None:
    """The quick build trains every planned (family, layer) SAE into sae/<family>/layer<L>/,
    each with a held-out record and a stage time, and writes nothing else under sae/."""
    out = quick_builds[0]
    manifest = json.loads((out / "manifest.json").read_text())
    planned = _planned(quick=True)
    assert _built(out) == planned == _planned(quick=False)
    assert len(planned) == sum(len(layers) for layers in SAE_PLAN.values())
    for family, layer in planned:
        path = tiny_sae_dir(family, layer, out)
        assert path == out / "sae" / family / f"layer{layer}"
        assert sorted(p.name for p in path.iterdir()) == ["cfg.json", "sae_weights.safetensors"]
        key = sae_key(family, layer)
        assert manifest["saes"][key]["path"] == f"sae/{family}/layer{layer}"
        assert set(manifest["saes"][key]["heldout"]) >= {"explained_variance", "mean_l0"}
        assert sae_stage(key) in manifest["stage_times_s"]
    files = {p.relative_to(out).as_posix() for p in (out / "sae").rglob("*") if p.is_file()}
    assert files == {
        f"sae/{sae_key(*fl)}/{n}" for fl in planned for n in ("cfg.json", "sae_weights.safetensors")
    }


def test_rebuild_is_byte_identical(quick_builds: tuple[Path, Path]) -> None:
    """Two builds from nothing write the same bytes: LM, tokenizer, SAEs and held-out text."""
    a, b = (json.loads((d / "manifest.json").read_text())["files"] for d in quick_builds)
    assert a == b and any(k.startswith("sae/jumprelu/layer3/") for k in a)


def test_rebuild_resumes_from_completed_stages(quick_builds: tuple[Path, Path]) -> None:
    """A rerun reuses every stage whose settings and files are unchanged and retrains the rest:
    a damaged SAE is retrained alone, to the same bytes; a stray file under sae/ is removed."""
    out = quick_builds[1]
    before = json.loads((out / "manifest.json").read_text())
    (tiny_sae_dir("jumprelu", 1, out) / "sae_weights.safetensors").write_bytes(b"damaged")
    (out / "sae" / "topk" / "cfg.json").write_text("{}")  # the single-layer layout's place
    after = _quick_build(out)
    damaged = sae_stage(sae_key("jumprelu", 1))
    sae_stages = [sae_stage(sae_key(s.family, s.layer)) for s in settings_for(True).saes]
    assert after["reused_stages"] == ["lm"] + [st for st in sae_stages if st != damaged]
    assert after["files"] == before["files"]
    assert after["stage_times_s"]["lm"] == before["stage_times_s"]["lm"]


@pytest.fixture(scope="module")
def committed() -> tuple:
    """The committed artefacts in sweep/tiny/assets."""
    assert (ASSET_DIR / "manifest.json").is_file(), "run: python -m sweep.tiny.build"
    return _load(ASSET_DIR)


def test_committed_artefacts_consistent(committed: tuple) -> None:
    """The committed LM, tokenizer and SAEs agree with each other and are a full build."""
    _check_consistent(*committed)
    assert committed[3]["quick"] is False and committed[3]["complete"] is True
    assert all(sae.cfg.d_sae >= 32 * sae.cfg.d_in for sae in committed[2].values())


def test_committed_sae_paths_and_layers() -> None:
    """`tiny_sae_dir` names sae/<family>/layer<L> below a root (default: the shipped assets);
    the manifest lists every planned pair, and none without a manifest."""
    assert tiny_sae_dir("jumprelu", 2) == ASSET_DIR / "sae" / "jumprelu" / "layer2"
    assert _built(ASSET_DIR) == _planned(quick=False)
    assert tiny_sae_layers("jumprelu", ASSET_DIR / "nowhere") == []


@torch.no_grad()
@pytest.mark.parametrize("layer", range(4))
def test_build_activations_are_block_outputs(committed: tuple, layer: int) -> None:
    """The activations the SAEs train on are block L's output (TL blocks.L.hook_resid_post,
    unprocessed), BOS dropped; HF's hidden_states[L + 1] equals it except after the last
    block, where HF applies the final layer norm (why the build hooks the blocks)."""
    model = committed[0]
    captured = []
    handle = model.gpt_neox.layers[layer].register_forward_hook(
        lambda _m, _i, o: captured.append(o[0] if isinstance(o, tuple) else o)
    )
    ids = torch.tensor([[model.config.bos_token_id, 5, 17, 300, 42, 7]])
    try:
        hs = model(input_ids=ids, output_hidden_states=True).hidden_states
    finally:
        handle.remove()
    block = captured[0]
    acts = quality.resid_activations_layers(model, ids, [layer])[layer]
    torch.testing.assert_close(acts, block[:, 1:].reshape(-1, block.shape[-1]), rtol=0, atol=0)
    if layer < model.config.num_hidden_layers - 1:
        torch.testing.assert_close(hs[layer + 1], block)
    else:
        assert not torch.allclose(hs[layer + 1], block)


@pytest.fixture(scope="module")
def measured(committed: tuple) -> MeasuredTokens:
    """The committed token rows the quality figures are measured on, and the train counts."""
    return MeasuredTokens.load(ASSET_DIR)


@pytest.fixture(scope="module")
def heldout_chunks(measured: MeasuredTokens) -> tuple[torch.Tensor, torch.Tensor]:
    """(pydoc, stdlib) held-out token rows, as committed: the same on every Python."""
    return measured.pydoc, measured.stdlib


def test_committed_tokens_are_the_builds_on_the_recorded_corpus(
    committed: tuple, measured: MeasuredTokens
) -> None:
    """The committed rows hold the manifest's token counts and decode to the committed held-out
    text; where this Python carries the corpus the build read (its sha256), tokenizing it again
    gives the committed rows and train counts exactly. The hash decides only that comparison."""
    _, tokenizer, _, manifest = committed
    ctx = manifest["context_size"]
    assert measured.pydoc.numel() == manifest["corpus"]["heldout_tokens"]
    assert measured.stdlib.numel() == manifest["corpus"]["heldout_stdlib_tokens"]
    assert int(measured.train_counts.sum()) == manifest["corpus"]["train_tokens"]
    assert (measured.pydoc[:, 0] == tokenizer.bos_token_id).all()
    pydoc = (ASSET_DIR / "heldout.txt").read_text(encoding="utf-8")
    expected = quality.chunk_stream(tok_lib.encode(tokenizer, pydoc), ctx, tokenizer.bos_token_id)
    assert torch.equal(measured.pydoc, expected)
    texts = gather(0.2, 0.1, manifest["corpus"]["pydoc"]["repeats_in_train"], 0)
    recorded = manifest["corpus"]
    same_corpus = (
        texts.record["stdlib"]["sha256"] == recorded["stdlib"]["sha256"]
        and texts.record["pydoc"]["sha256"] == recorded["pydoc"]["sha256"]
    )
    if same_corpus:
        train_ids = torch.tensor(tok_lib.encode(tokenizer, join(texts.train_docs)))
        n_code = len(measured.stdlib)
        rebuilt = measured_tokens(texts, tokenizer, train_ids, ctx, n_code, quick=False)
        assert torch.equal(rebuilt.pydoc, measured.pydoc)
        assert torch.equal(rebuilt.stdlib, measured.stdlib)
        assert torch.equal(rebuilt.train_counts, measured.train_counts)


def test_committed_lm_quality_recomputed(committed: tuple, measured: MeasuredTokens) -> None:
    """The LM beats a unigram model by far on held-out prose; figures equal the manifest's."""
    model, _, _, manifest = committed
    lm_ppl = quality.lm_perplexity(model, measured.pydoc)
    uni_ppl = quality.unigram_perplexity(measured.train_counts, measured.pydoc[:, 1:])
    assert lm_ppl < 0.3 * uni_ppl, (lm_ppl, uni_ppl)
    assert lm_ppl == pytest.approx(manifest["metrics"]["lm_heldout_ppl"], rel=1e-4)
    assert uni_ppl == pytest.approx(manifest["metrics"]["unigram_heldout_ppl"], rel=1e-6)


def test_committed_saes_meet_the_bar(committed: tuple, heldout_chunks: tuple) -> None:
    """Each SAE on held-out text, recomputed: the figures equal the manifest's and meet the bar
    (EV >= 0.85, L0 in [8, 64], < 10% dead); at each layer the families' L0s are within 20%."""
    model, _, saes, manifest = committed
    layers = sorted({layer for _, layer in saes})
    acts = quality.resid_activations_layers(model, torch.cat(heldout_chunks), layers)
    figures = {
        (f, layer): quality.sae_metrics(sae, acts[layer]) for (f, layer), sae in saes.items()
    }
    for (family, layer), m in figures.items():
        assert m["explained_variance"] >= 0.85, (family, layer, m)
        assert 8 <= m["mean_l0"] <= 64, (family, layer, m)
        assert m["dead_fraction"] < 0.10, (family, layer, m)
        recorded = manifest["saes"][sae_key(family, layer)]["heldout"]
        for key in ("explained_variance", "mean_l0", "dead_fraction"):
            assert m[key] == pytest.approx(recorded[key], rel=1e-4, abs=1e-6), (family, layer, key)
    for layer in layers:
        l0 = [m["mean_l0"] for (_, lay), m in figures.items() if lay == layer]
        assert len(l0) >= 2 and max(l0) <= 1.2 * min(l0), (layer, l0)  # matched sparsity


def test_pydoc_split_has_no_shared_lines() -> None:
    """No held-out pydoc line of 40+ characters occurs in any train document, pydoc or stdlib."""
    topics = corpus.load_topics()
    train, held = corpus.split_documents(topics)
    assert train and held and not set(train) & set(held)
    assert set(train) | set(held) == set(topics)
    assert corpus.split_documents(topics) == (train, held)  # deterministic
    held_lines = set().union(*(corpus.long_lines(topics[n]) for n in held))
    files = stdlib.load_files()
    train_files, _ = stdlib.split_files(files, 0.1)
    train_docs = [topics[n] for n in train] + [files[p] for p in train_files]
    assert not held_lines & set().union(*(corpus.long_lines(d) for d in train_docs))


def test_overlap_groups_join_topics_sharing_a_line() -> None:
    """Topics sharing a long line land in one group, transitively; others stay apart."""
    line = "x" * corpus.MIN_SHARED_LINE
    topics = {"a": f"{line}1\nA", "b": f"{line}1\n{line}2", "c": f"{line}2", "d": f"{line}3"}
    assert corpus.overlap_groups(topics) == [["a", "b", "c"], ["d"]]


def test_stdlib_split_depends_on_path_only(tmp_path: Path) -> None:
    """A file's side is decided by its own path: adding files never moves another one."""
    for name in ("a.py", "pkg/b.py", "pkg/tests/t.py", "pydoc_data/topics.py", "c.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(f"# {name}\n")
    files = stdlib.load_files(tmp_path)
    assert sorted(files) == ["a.py", "c.py", "pkg/b.py"]  # tests and pydoc_data left out
    sides = {p: stdlib.is_heldout(p, 0.5) for p in files}
    (tmp_path / "z.py").write_text("# z\n")
    more = stdlib.load_files(tmp_path)
    assert {p: stdlib.is_heldout(p, 0.5) for p in files} == sides and "z.py" in more
    train, held = stdlib.split_files(more, 0.5)
    assert sorted(train + held) == sorted(more) and not set(train) & set(held)


def test_an_sae_is_reused_only_on_the_same_training_activations(tmp_path: Path) -> None:
    """Same settings and intact files are not enough: an SAE trained on another number of
    activation tokens (`sae_train_tokens`) is retrained."""
    key, settings = sae_key("relu", 1), {"family": "relu", "layer": 1, "lr": 1.0}
    tiny_sae_dir("relu", 1, tmp_path).mkdir(parents=True)
    (tiny_sae_dir("relu", 1, tmp_path) / "w").write_bytes(b"weights")
    record = {
        "corpus": {"sae_train_tokens": 1000},
        "saes": {key: {"path": "sae/relu/layer1", "settings": settings}},
        "stage_times_s": {sae_stage(key): 1.0},
        "files": file_digests(tmp_path),
    }
    (tmp_path / "manifest.json").write_text(json.dumps(record))
    prior = Prior(tmp_path)
    same, other = {"corpus": {"sae_train_tokens": 1000}}, {"corpus": {"sae_train_tokens": 2000}}
    assert prior.sae_reusable(key, settings, same)
    assert not prior.sae_reusable(key, settings, other)
    assert not prior.sae_reusable(key, {**settings, "lr": 2.0}, same)
    assert not prior.sae_reusable(sae_key("relu", 2), {**settings, "layer": 2}, same)


@pytest.mark.parametrize("n", [1, 2, 513, 8192])
def test_column_quantile_is_torch_quantile(n: int) -> None:
    """JumpReLU's initial thresholds: `column_quantile` equals `torch.quantile` bit for bit
    (ties, repeated columns, the build's quantile and others)."""
    g = torch.Generator().manual_seed(n)
    x = torch.randn(n, 64, generator=g) * 3 + 0.5
    x[: n // 4] = x[n // 4 : 2 * (n // 4)]  # ties
    x[:, 1] = 0.25
    for q in (1.0 - 40 / 4096, 0.0, 0.5, 0.9, 1.0):
        assert torch.equal(column_quantile(x, q), x.quantile(q, dim=0)), (n, q)
