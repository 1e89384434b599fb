"""Each measurement pass ÷ its floor, and a job's passes ÷ its bare forwards, in one run.

python -m benchmarks.passes [--config NAME ...] [--n-seq N] [--repeats 5] [--threads T]
    [--json PATH]

Per configuration (model shape × SAE family × width; random weights, RTN 4-bit, batch 8,
BOS-prefixed sequences of 128 tokens), each configuration in a fresh process, all its timings
interleaved after one warm-up each, median CPU time:
- bare_q, bare_fp: the compressed / FP model's plain forward (logits only).
- floor_q, floor_fp: the least a measurement pass can do: the forward with the SAE hook, the SAE
  encode of every measured token, and one log-softmax of the logits for loss and KL, over the
  whole logits tensor; blocked_floor_*: the same with the log-softmax taken in blocks of 4M
  entries, as the passes now take it (no [tokens, vocab] tensor: a stricter floor).
- pass_q: the compressed measurement pass as a job runs it (`sweep.passes.measure.measure`: paired
  streaming statistics, top-16 contexts, loss, KL) against the FP reference.
- pass_fp: the FP reference pass (`compute_reference`: sparse codes, loss, top-128 log-probs).
- sliding_q (first configuration of each shape): the compressed model's sliding-window
  perplexity at stride 64, as `eval.sliding_window_stride=64` adds it to a job.
Ratios: pass ÷ floor (target ≤ 1.10) and ÷ blocked floor, floor ÷ bare, uncached job (pass_fp +
pass_q) and cached job (pass_q) ÷ bare FP + compressed forwards, sliding ÷ compressed pass.
"""

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks.common import (
    BOS,
    PROCESSING,
    calibrated_sae,
    hook_of,
    interleaved_medians,
    load_average,
    random_neox,
    random_tokens,
    rtn_copy,
)
from sweep.inputs.hooked import HookedLM
from sweep.passes.logprobs import batches, encode_codes
from sweep.passes.measure import measure
from sweep.passes.perplexity import sliding_window_loss
from sweep.passes.reference import compute_reference

BATCH, CONTEXTS_K, KL_TOP_K, STRIDE = 8, 16, 128, 64
# name -> (shape, SAE family, d_sae, target mean L0, default sequences)
CONFIGS = {
    "pythia-relu-32k": ("pythia-70m", "relu", 32768, 64, 32),
    "pythia-relu-65k": ("pythia-70m", "relu", 65536, 64, 32),
    "tiny-relu-4k": ("tiny", "relu", 4096, 32, 128),
    "tiny-topk-4k": ("tiny", "topk", 4096, 32, 128),
    "tiny-jumprelu-4k": ("tiny", "jumprelu", 4096, 32, 128),
}


def bare(model: HookedLM, tokens: torch.Tensor) -> None:
    """Plain forward passes over the token set."""
    with torch.no_grad():
        for batch in batches(tokens, BATCH):
            model(batch)


def floor(
    model: HookedLM,
    saes: dict,
    tokens: torch.Tensor,
    blocked: bool = False,
    batch_size: int = BATCH,
) -> None:
    """Hooked forward + SAE encode + one log-softmax per batch: what no pass can skip. The
    log-softmax over the whole [batch, positions, vocab] logits, or `blocked`: 4M entries at a
    time, as the passes take it (the same values, no [tokens, vocab] tensor)."""
    with torch.no_grad():
        for batch in batches(tokens, batch_size):
            acts, logits = model.run(batch, list(saes))
            for hook, sae in saes.items():
                encode_codes(sae, acts[hook], 1)
            if not blocked:
                torch.log_softmax(logits.float(), dim=-1)
                continue
            block = max(1, (1 << 22) // logits.shape[-1])
            for row in logits:
                for start in range(0, len(row) - 1, block):
                    torch.log_softmax(row[start : start + block].float(), dim=-1)


@dataclass
class Setup:
    """One configuration's models, SAE, tokens and FP reference."""

    fp: HookedLM
    q: HookedLM
    saes: dict
    tokens: torch.Tensor
    reference: object

    def pass_q(self) -> None:
        """The compressed measurement pass as a job runs it."""
        measure(self.reference, {"q": self.q}, self.saes, self.tokens, BATCH, 1, False, CONTEXTS_K)

    def pass_fp(self) -> None:
        """The FP reference pass."""
        compute_reference(self.fp, self.saes, self.tokens, BATCH, 1, KL_TOP_K, False)


def setup(name: str, n_seq: int | None) -> Setup:
    """Build configuration `name` (random weights, RTN 4-bit copy, calibrated SAE)."""
    shape, family, d_sae, l0, default_n = CONFIGS[name]
    hf = random_neox(shape)
    fp, q = HookedLM.wrap(hf, PROCESSING), rtn_copy(hf, 4)
    hook = hook_of(hf)
    saes = {hook: calibrated_sae(family, fp, hook, d_sae, l0)}
    tokens = random_tokens(n_seq or default_n, hf.config.vocab_size)
    reference = compute_reference(fp, saes, tokens, BATCH, 1, KL_TOP_K, False)
    return Setup(fp, q, saes, tokens, reference)


def run_config(name: str, n_seq: int | None, repeats: int, sliding: bool) -> dict:
    """Median seconds and ratios of one configuration."""
    shape, family, d_sae, _, _ = CONFIGS[name]
    b = setup(name, n_seq)
    fp, q, saes, tokens = b.fp, b.q, b.saes, b.tokens
    (codes,) = b.reference.codes.values()
    mean_l0 = len(codes.values) / (tokens.shape[0] * (tokens.shape[1] - 1))
    fns = {
        "bare_q": lambda: bare(q, tokens),
        "bare_fp": lambda: bare(fp, tokens),
        "floor_q": lambda: floor(q, saes, tokens),
        "floor_fp": lambda: floor(fp, saes, tokens),
        "blocked_floor_q": lambda: floor(q, saes, tokens, blocked=True),
        "blocked_floor_fp": lambda: floor(fp, saes, tokens, blocked=True),
        "pass_q": b.pass_q,
        "pass_fp": b.pass_fp,
    }
    if sliding:
        stream = tokens[:, 1:].reshape(-1)
        fns["sliding_q"] = lambda: sliding_window_loss(q, stream, tokens.shape[1], STRIDE, BOS)
    load_before = load_average()
    timed = interleaved_medians(fns, repeats)
    s = timed["cpu"]
    bare_both = s["bare_fp"] + s["bare_q"]
    ratios = {
        "pass_q/floor_q": s["pass_q"] / s["floor_q"],
        "pass_fp/floor_fp": s["pass_fp"] / s["floor_fp"],
        "pass_q/blocked_floor_q": s["pass_q"] / s["blocked_floor_q"],
        "pass_fp/blocked_floor_fp": s["pass_fp"] / s["blocked_floor_fp"],
        "floor_q/bare_q": s["floor_q"] / s["bare_q"],
        "pass_q/bare_q": s["pass_q"] / s["bare_q"],
        "uncached_job/bare_fp+q": (s["pass_fp"] + s["pass_q"]) / bare_both,
        "cached_job/bare_fp+q": s["pass_q"] / bare_both,
    }
    if sliding:
        ratios["sliding_q/pass_q"] = s["sliding_q"] / s["pass_q"]
        ratios["sliding_q/bare_q"] = s["sliding_q"] / s["bare_q"]
    return {
        "shape": shape,
        "family": family,
        "d_sae": d_sae,
        "tokens": tokens.numel(),
        "mean_l0": mean_l0,
        "median_cpu_s": s,
        "median_wall_s": timed["wall"],
        "ratios": ratios,
        "load": [load_before, load_average()],
    }


def run(names: list[str], n_seq: int | None, repeats: int) -> dict:
    """Every named configuration, each in a fresh process (so no configuration inherits another's
    allocator state), with this process's torch threads; sliding-window cost on the first
    configuration of each model shape."""
    out, shapes = {}, set()
    for name in names:
        shape = CONFIGS[name][0]
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.passes",
            "--child",
            name,
            "--repeats",
            str(repeats),
        ]
        cmd += ["--threads", str(torch.get_num_threads())]
        cmd += [
            *(["--n-seq", str(n_seq)] if n_seq else []),
            *([] if shape in shapes else ["--sliding"]),
        ]
        child = subprocess.run(cmd, capture_output=True, text=True, check=True)
        out[name] = json.loads(child.stdout.splitlines()[-1])
        shapes.add(shape)
        print(name, json.dumps({k: round(v, 3) for k, v in out[name]["ratios"].items()}))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--n-seq", type=int, default=None, help="sequences (default per config)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--child", choices=list(CONFIGS), help=argparse.SUPPRESS)
    parser.add_argument("--sliding", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(run_config(args.child, args.n_seq, args.repeats, args.sliding)))
        return
    result = run(args.config, args.n_seq, args.repeats)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
