"""Job cost ÷ the cost of its bare forward passes, on the same model and tokens.

python -m benchmarks.overhead [--shape pythia-70m] [--d-sae 32768] [--n-seq 32] [--device cpu]

Bare: the FP and the compressed TransformerLens model's forward passes, no hooks, SAE or stats.
qfeat, uncached job: FP reference pass (hooks, SAE encode, sparse codes, top-k) + compressed
pass (hooks, SAE encode, streaming statistics, loss, KL). qfeat, cached job: the compressed pass
alone, as every job after the first in a sweep runs it. Ratios are measured in one run.
"""

import argparse
import copy

import torch

from benchmarks.common import best_of, random_neox, random_sae
from sweep.compressors import compress_model
from sweep.hooked import HookedLM
from sweep.measure import batches, compute_reference, measure
from sweep.models import resolve_device
from sweep.schema import CompressionConfig

PROCESSING = {
    "fold_ln": False,
    "center_writing_weights": False,
    "center_unembed": False,
    "fold_value_biases": False,
    "refactor_factored_attn_matrices": False,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="pythia-70m")
    parser.add_argument("--d-sae", type=int, default=32768)
    parser.add_argument("--n-seq", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    from omegaconf import OmegaConf

    hf = random_neox(args.shape, args.seq_len)
    path = "/tmp/qfeat-bench-model"
    hf.save_pretrained(path)
    fp = HookedLM.wrap(hf.to(device), PROCESSING)
    q_hf = copy.deepcopy(hf)
    compress_model(q_hf, OmegaConf.structured(CompressionConfig(name="rtn")), bits=4)
    q = HookedLM.wrap(q_hf, PROCESSING)
    layer = hf.config.num_hidden_layers // 2
    hook = f"blocks.{layer}.hook_resid_post"
    saes = {hook: random_sae(hf.config.hidden_size, args.d_sae, hook).to(device)}
    tokens = torch.randint(1, hf.config.vocab_size, (args.n_seq, args.seq_len))

    def bare() -> None:
        with torch.no_grad():
            for model in (fp, q):
                for batch in batches(tokens, args.batch_size):
                    model(batch.to(device))

    state = {}

    def reference() -> None:
        state["ref"] = compute_reference(fp, saes, tokens, args.batch_size, 1, 128, False)

    def compressed() -> None:
        measure(state["ref"], {"q": q}, saes, tokens, args.batch_size, 1, False)

    t_bare = best_of(bare)
    t_ref = best_of(reference)
    t_q = best_of(compressed)
    print(f"shape={args.shape} d_sae={args.d_sae} tokens={tokens.numel()} device={device}")
    print(f"bare FP + compressed forward: {t_bare:.3f}s")
    print(f"FP reference pass:            {t_ref:.3f}s")
    print(f"compressed measurement pass:  {t_q:.3f}s")
    print(
        f"uncached job (reference + compressed pass) / bare FP + compressed: "
        f"{(t_ref + t_q) / t_bare:.3f}"
    )
    print(
        f"cached job (compressed pass; every later job of a sweep) / bare FP + compressed: "
        f"{t_q / t_bare:.3f}"
    )
    print(
        f"compressed pass / bare compressed forward alone (instrumentation cost): "
        f"{t_q / (t_bare / 2):.3f}"
    )


if __name__ == "__main__":
    main()
