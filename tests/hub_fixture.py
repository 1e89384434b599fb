"""A temporary Hugging Face hub cache holding tiny stand-ins under the real repo ids.

Real architectures (GPT-NeoX, Gemma-2) with random weights, real tokenizer files with each
model's BOS convention, and SAEs in the on-disk format of their SAE-Lens releases, placed where
huggingface_hub looks for them offline: `<cache>/models--org--name/snapshots/<rev>/…` with
`refs/main` naming the revision.
"""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sae_lens.loading.pretrained_saes_directory import get_repo_id_and_folder_name
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    Gemma2Config,
    Gemma2ForCausalLM,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

PYTHIA_REPO, GEMMA_REPO = "EleutherAI/pythia-70m-deduped", "google/gemma-2-2b"
PILE_REPO = "NeelNanda/pile-10k"  # conf/data/pile.yaml
PYTHIA_RELEASE, GEMMA_RELEASE = "pythia-70m-deduped-res-sm", "gemma-scope-2b-pt-res-canonical"
GEMMA_D_MODEL, GEMMA_D_SAE = 2304, 16384  # SAE-Lens' gemma_2 loader derives these from the ids


def sample_text(n_words: int = 6000, seed: int = 0) -> str:
    """Deterministic pseudo-English text for tokenizer training and the measured token set."""
    rng = np.random.default_rng(seed)
    words = "the a model feature layer sparse code weight token bit quant prune survive of to in"
    words = [*words.split(), "is", "that", "it", "with", "for", "as", "on", "was", "by", "from"]
    lines = [" ".join(rng.choice(words, size=12)) + "." for _ in range(n_words // 12)]
    return "\n".join(lines)


def repo_snapshot(cache: Path, repo_id: str, repo_type: str = "model") -> Path:
    """The snapshot folder of `repo_id` in `cache`, with refs/main pointing at it."""
    root = cache / f"{repo_type}s--{repo_id.replace('/', '--')}"
    rev = hashlib.sha1(repo_id.encode()).hexdigest()
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(rev)
    snapshot = root / "snapshots" / rev
    snapshot.mkdir(parents=True, exist_ok=True)
    return snapshot


def make_tokenizer(text: str, special: list[str], bos: str, eos: str) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on `text` with the given special tokens."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([text], trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token=eos, unk_token=eos, pad_token=special[0]
    )


def save_model(model: PreTrainedModel, tokenizer, snapshot: Path) -> None:
    """Save an HF model and its tokenizer into a hub snapshot folder."""
    model.save_pretrained(str(snapshot))
    tokenizer.save_pretrained(str(snapshot))


def resid_post(model: PreTrainedModel, tokenizer, text: str, layer: int) -> torch.Tensor:
    """The residual stream after block `layer` on `text` (BOS-prefixed): [tokens, d_model]."""
    ids = [tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"][:255]]
    with torch.no_grad():
        out = model(torch.tensor([ids]), output_hidden_states=True)
    return out.hidden_states[layer + 1][0, 1:].float()


def sae_weights(acts: torch.Tensor, d_sae: int, seed: int) -> dict[str, torch.Tensor]:
    """Random encoder/decoder; per-feature thresholds make each fire on ~10% of tokens."""
    gen = torch.Generator().manual_seed(seed)
    d_in = acts.shape[1]
    w_enc = torch.randn(d_in, d_sae, generator=gen) / d_in**0.5
    pre = acts @ w_enc
    threshold = pre.quantile(0.9, dim=0).clamp_min(1e-3)
    w_dec = torch.randn(d_sae, d_in, generator=gen) / d_sae**0.5
    return {"W_enc": w_enc, "W_dec": w_dec, "threshold": threshold, "b_dec": torch.zeros(d_in)}


def build_pythia(cache: Path, text: str) -> None:
    """Tiny GPT-NeoX as EleutherAI/pythia-70m-deduped plus standard SAEs for layers 0-5."""
    tokenizer = make_tokenizer(
        text, ["<|endoftext|>", "<|padding|>"], "<|endoftext|>", "<|endoftext|>"
    )
    torch.manual_seed(0)
    config = GPTNeoXConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=6,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=256,
        bos_token_id=0,
        eos_token_id=0,
        tie_word_embeddings=False,
    )
    model = GPTNeoXForCausalLM(config).eval()
    save_model(model, tokenizer, repo_snapshot(cache, PYTHIA_REPO))
    for layer in range(6):
        hook = f"blocks.{layer}.hook_resid_post"
        repo, folder = get_repo_id_and_folder_name(PYTHIA_RELEASE, hook)
        w = sae_weights(resid_post(model, tokenizer, text, layer), 256, seed=layer)
        target = repo_snapshot(cache, repo) / folder
        target.mkdir(parents=True, exist_ok=True)
        state = {"W_enc": w["W_enc"], "W_dec": w["W_dec"], "b_dec": w["b_dec"]}
        state["b_enc"] = -w["threshold"]  # ReLU SAE: the bias plays the threshold's part
        save_file(state, str(target / "sae_weights.safetensors"))
        cfg = {
            "architecture": "standard",
            "d_in": 64,
            "d_sae": 256,
            "dtype": "float32",
            "device": "cpu",
            "apply_b_dec_to_input": True,
            "normalize_activations": "none",
            "model_name": "pythia-70m-deduped",
            "hook_name": hook,
            "hook_head_index": None,
            "prepend_bos": True,
            "context_size": 128,
            "dataset_path": "test",
        }
        (target / "cfg.json").write_text(json.dumps(cfg))


def build_gemma(cache: Path, text: str, layers: tuple[int, ...] = (0, 1)) -> None:
    """Tiny Gemma-2 (d_model 2304, 3 layers) as google/gemma-2-2b plus Gemma Scope-format SAEs."""
    special = ["<pad>", "<eos>", "<bos>", "<unk>"]
    tokenizer = make_tokenizer(text, special, "<bos>", "<eos>")
    torch.manual_seed(0)
    config = Gemma2Config(
        vocab_size=len(tokenizer),
        hidden_size=GEMMA_D_MODEL,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=256,
        max_position_embeddings=256,
        sliding_window=32,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
    )
    model = Gemma2ForCausalLM(config).eval()
    save_model(model, tokenizer, repo_snapshot(cache, GEMMA_REPO))
    for layer in layers:
        repo, folder = get_repo_id_and_folder_name(
            GEMMA_RELEASE, f"layer_{layer}/width_16k/canonical"
        )
        w = sae_weights(resid_post(model, tokenizer, text, layer), GEMMA_D_SAE, seed=layer)
        target = repo_snapshot(cache, repo) / folder
        target.mkdir(parents=True, exist_ok=True)
        arrays = {k.replace("W_", "w_"): v.numpy().astype(np.float16) for k, v in w.items()}
        np.savez(target / "params.npz", b_enc=np.zeros(GEMMA_D_SAE, np.float16), **arrays)


def build_hub_cache(cache: Path) -> Path:
    """Both models and their SAEs in a fresh hub cache at `cache`; returns `cache`."""
    if cache.exists():
        shutil.rmtree(cache)
    text = sample_text()
    build_pythia(cache, text)
    build_gemma(cache, text)
    data = repo_snapshot(cache, PILE_REPO, "dataset") / "data"
    data.mkdir(parents=True)
    docs = text.split("\n")
    pd.DataFrame({"text": docs, "meta": ["{}"] * len(docs)}).to_parquet(data / "train.parquet")
    return cache


def conversion_gap(name: str, layer: int) -> tuple[float, float, float]:
    """qfeat's HF hooks vs TL at `layer`: log-probs, resid_pre, resid_post, each as the largest
    |Δ| / (1e-5 + 1.3e-6 |x_TL|), i.e. in units of torch.testing's float32 tolerance (≤ 1 is
    equal). The relative part matters: float32 rounding grows with the residual's size and
    differs with the number of threads.

    TransformerLens converts the same HF model with its default processing (what the SAE
    releases without model_from_pretrained_kwargs get): for LayerNorm models that centres the
    residual stream, which sweep.inputs.hooked reproduces. Run with HF_HUB_OFFLINE=1 and
    HF_HUB_CACHE at a cache from `build_hub_cache`.
    """
    from omegaconf import OmegaConf

    from sweep.config.locations import model_path
    from sweep.inputs.hooked import HookedLM
    from sweep.inputs.models import load_hf_model, tl_processing
    from tl_oracle import to_hooked

    cfg = OmegaConf.create({"name": name, "path": None, "dtype": "float32"})
    hf = load_hf_model(cfg, torch.device("cpu"))
    processing = tl_processing(None)
    tl = to_hooked(hf, model_path(cfg), processing, torch.device("cpu"))
    ids = torch.randint(3, 300, (2, 64), generator=torch.Generator().manual_seed(0))
    ids[:, 0] = hf.config.bos_token_id
    hooks = [f"blocks.{layer}.hook_resid_pre", f"blocks.{layer}.hook_resid_post"]
    with torch.no_grad():
        acts, logits = HookedLM.wrap(hf, processing).run(ids, hooks)
        tl_logits, cache = tl.run_with_cache(ids, names_filter=hooks)
    pairs = [(logits.log_softmax(-1), tl_logits.log_softmax(-1))] + [
        (acts[h], cache[h]) for h in hooks
    ]
    return tuple(((a - b).abs() / (1e-5 + 1.3e-6 * b.abs())).max().item() for a, b in pairs)
