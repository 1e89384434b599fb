"""Real shapes on CPU: a Gemma-2-2B-shaped job in bfloat16, and 1M-feature SAEs.

python -m benchmarks.real_shapes [--part gemma,wide] [--n-seq 4] [--work DIR] [--json PATH]

gemma: Gemma-2-2B's architecture (26 layers, d_model 2304, d_mlp 9216, 8 heads of 256, 4 KV
heads, vocabulary 256,000; 2.6 B parameters, 5.2 GB in bfloat16) with random weights, saved as a
local checkpoint, and a 16k JumpReLU SAE at layer 12 calibrated on its activations to a real
SAE's sparsity. Two real jobs (`sweep.job.run.run`, RTN, `runtime.half_on_cpu=true` so the model
stays bfloat16 on the CPU), each in a fresh process: the first computes the FP reference
(nothing cached), the second is a compressed job answered by that cached reference. Reported:
each job's peak resident memory ÷ the model's bytes, its anonymous and file-backed parts, and
the stage the peak fell in.

wide: the compressed pass (`sweep.passes.measure.measure`, top-16 contexts) with a ReLU SAE
of 65,536, 262,144 and 1,048,576 features on Pythia-70M's shape, batches of one sequence (a
batch's dense codes are tokens × d_sae floats). Reported: the bytes of the pass's state (paired
statistics and contexts) per feature, the pass's peak memory above what was resident before it,
and the pass ÷ its floor (hooked forward, SAE encode and one log-softmax of the logits), median
CPU times over interleaved repeats.

Each configuration runs in its own process, watched by a thread that samples /proc/self/status
every 20 ms and ends the process (exit 3) before the machine's available memory falls below
1.5 GiB: a shared machine is never pushed into the OOM killer.
"""

import argparse
import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchmarks.common import load_average

GEMMA_2_2B = dict(
    vocab_size=256000,
    hidden_size=2304,
    intermediate_size=9216,
    num_hidden_layers=26,
    num_attention_heads=8,
    num_key_value_heads=4,
    head_dim=256,
    max_position_embeddings=8192,
    sliding_window=4096,
)
GEMMA_LAYER, GEMMA_D_SAE, GEMMA_L0 = 12, 16384, 64
WIDE = (1 << 16, 1 << 18, 1 << 20)
MIN_AVAILABLE_GIB = 1.5
GIB = 1 << 30


def _status_kib() -> dict[str, int]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            fields[name] = int(rest.split()[0])
    return fields


def _available_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / (1 << 20)
    raise KeyError("MemAvailable")


class PeakMemory:
    """Peak resident memory of this process (total, anonymous, file-backed), sampled every
    20 ms, with the last stage a job had logged when each peak was seen; ends the process when
    the machine's available memory falls below MIN_AVAILABLE_GIB."""

    def __init__(self) -> None:
        self.peak = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0}
        self.at: dict[str, str] = {}
        self.stage = "start"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def sample(self) -> None:
        now = _status_kib()
        for name in self.peak:
            if now[name] > self.peak[name]:
                self.peak[name], self.at[name] = now[name], self.stage

    def _watch(self) -> None:
        while not self._stop.wait(0.02):
            self.sample()
            if _available_gib() < MIN_AVAILABLE_GIB:
                print(f"stopped: machine below {MIN_AVAILABLE_GIB} GiB available", flush=True)
                os._exit(3)

    def gib(self) -> dict[str, float]:
        return {k: round(v / (1 << 20), 3) for k, v in self.peak.items()}


class _StageNames(logging.Handler):
    """Names the stage a job is in from its log lines (sweep.job.run logs each as it ends)."""

    def __init__(self, memory: PeakMemory, stages: list[str]) -> None:
        super().__init__()
        self.memory, self.stages = memory, stages

    def emit(self, record: logging.LogRecord) -> None:
        word = record.getMessage().split(" ")[0]
        if word in self.stages:  # the stage that just ended: the next one starts
            nxt = self.stages.index(word) + 1
            self.memory.sample()
            self.memory.stage = self.stages[nxt] if nxt < len(self.stages) else "after"


def gemma_setup(work: Path) -> dict:
    """The random-weight Gemma-2-2B-shaped checkpoint and its calibrated 16k SAE, under work/."""
    import shutil

    import torch
    from sae_lens import JumpReLUSAE
    from transformers import Gemma2Config, Gemma2ForCausalLM

    from benchmarks.common import calibrated_sae
    from sweep.base.paths import TINY_ASSETS
    from sweep.inputs.hooked import HookedLM

    model_dir, sae_dir = work / "model", work / "sae"
    torch.manual_seed(0)
    config = Gemma2Config(**GEMMA_2_2B, dtype="bfloat16")
    model = Gemma2ForCausalLM._from_config(config, dtype=torch.bfloat16).eval()
    params = sum(p.numel() for p in model.parameters())
    model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    model.save_pretrained(model_dir)
    for name in ("tokenizer.json", "tokenizer_config.json"):  # ids < 2048: valid for Gemma
        shutil.copy(TINY_ASSETS / "lm" / name, model_dir / name)
    hook = f"blocks.{GEMMA_LAYER}.hook_resid_post"
    processing = {"center_writing_weights": False}
    hooked = HookedLM.wrap(model, processing)
    sae = calibrated_sae("jumprelu", hooked, hook, GEMMA_D_SAE, GEMMA_L0)
    assert isinstance(sae, JumpReLUSAE)
    sae.cfg.metadata.model_from_pretrained_kwargs = processing
    sae.save_model(str(sae_dir))
    meta = {"params": params, "model_bytes": model_bytes, "d_sae": GEMMA_D_SAE, "layer": 12}
    (work / "meta.json").write_text(json.dumps(meta))
    return meta


def gemma_overrides(work: Path, n_seq: int, bits: int) -> list[str]:
    """The job: the checkpoint and SAE above, RTN at `bits`, n_seq sequences of 128 tokens."""
    return [
        "model.name=hf",
        f"model.path={work / 'model'}",
        "model.dtype=bfloat16",
        "runtime.half_on_cpu=true",
        "runtime.device=cpu",
        "runtime.batch_size=1",
        "runtime.progress=false",
        "sae.name=local",
        f"sae.path={work / 'sae'}",
        f"sae.layer={GEMMA_LAYER}",
        f"data.n_sequences={n_seq}",
        "data.seq_len=128",
        "survival.min_active_tokens=3",
        "fidelity.n_sequences=1",
        "compression=rtn",
        f"bits={bits}",
        "wandb.mode=disabled",
        f"out_root={work / 'out'}",
    ]


def gemma_job(overrides: list[str]) -> dict:
    """One real job, in this process, under the memory watch."""
    from sweep.config.compose import compose_config
    from sweep.job.run import run

    stages = ["tokens", "load", "reference", "compress", "measure", "derive", "fidelity", "record"]
    with PeakMemory() as memory:
        handler = _StageNames(memory, stages)
        logging.getLogger("qfeat").addHandler(handler)
        logging.getLogger("qfeat").setLevel(logging.INFO)
        memory.stage = stages[0]
        start = time.perf_counter()
        result = run(compose_config(overrides))
        wall = time.perf_counter() - start
    s = result.summary
    return {
        "peak_gib": memory.gib(),
        "peak_in_stage": memory.at,
        "vm_hwm_gib": round(_status_kib()["VmHWM"] / (1 << 20), 3),
        "reference_computed": s.reference.computed,
        "timings_s": s.timings_s,
        "wall_s": round(wall, 1),
        "n_active": s.metrics.n_active,
        "frac_survived": s.metrics.frac_survived,
    }


def wide_child(d_sae: int, n_seq: int, repeats: int) -> dict:
    """The compressed pass with a d_sae-wide ReLU SAE: state bytes, peak memory, pass ÷ floor."""
    import torch

    from benchmarks.common import (
        PROCESSING,
        calibrated_sae,
        hook_of,
        interleaved_medians,
        random_neox,
        random_tokens,
        rtn_copy,
    )
    from benchmarks.passes import floor
    from sweep.inputs.hooked import HookedLM
    from sweep.passes.measure import measure
    from sweep.passes.reference import compute_reference

    with PeakMemory() as memory:
        hf = random_neox("pythia-70m")
        fp, q = HookedLM.wrap(hf, PROCESSING), rtn_copy(hf, 4)
        hook = hook_of(hf)
        saes = {hook: calibrated_sae("relu", fp, hook, d_sae, 64)}
        tokens = random_tokens(n_seq, hf.config.vocab_size)
        reference = compute_reference(fp, saes, tokens, 1, 1, 128, False)
        before = _status_kib()["VmRSS"]
        memory.peak = dict.fromkeys(memory.peak, 0)
        memory.stage = "pass"
        result = measure(reference, {"q": q}, saes, tokens, 1, 1, False, 16).variants["q"]
    state = [*vars(result.stats[hook]).values(), *vars(result.contexts[hook].by_fp).values()]
    state += list(vars(result.contexts[hook].by_q).values())
    state_bytes = sum(t.numel() * t.element_size() for t in state if isinstance(t, torch.Tensor))
    timed = interleaved_medians(
        {
            "floor_q": lambda: floor(q, saes, tokens, batch_size=1),
            "pass_q": lambda: measure(reference, {"q": q}, saes, tokens, 1, 1, False, 16),
        },
        repeats,
    )
    cpu = timed["cpu"]
    return {
        "d_sae": d_sae,
        "tokens": tokens.numel(),
        "state_bytes": state_bytes,
        "state_bytes_per_feature": state_bytes / d_sae,
        "sae_weight_bytes": sum(p.numel() * p.element_size() for p in saes[hook].parameters()),
        "rss_before_pass_gib": round(before / (1 << 20), 3),
        "pass_peak_above_before_gib": round((memory.peak["VmRSS"] - before) / (1 << 20), 3),
        "median_cpu_s": cpu,
        "median_wall_s": timed["wall"],
        "pass_q/floor_q": cpu["pass_q"] / cpu["floor_q"],
    }


def _child(*args: str) -> dict:
    """Run `python -m benchmarks.real_shapes --child ARGS` and read its last line (JSON)."""
    cmd = [sys.executable, "-m", "benchmarks.real_shapes", "--child", *args]
    load = load_average()
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-2000:]
        return {"error": f"exit {proc.returncode}", "tail": tail, "load": [load, load_average()]}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        **out,
        "process_wall_s": round(time.perf_counter() - start, 1),
        "load": [load, load_average()],
    }


def run_gemma(work: Path, n_seq: int) -> dict:
    """Set up once, then the FP-reference job and a cached compressed job."""
    if not (work / "meta.json").exists():
        setup = _child("gemma-setup", str(work))
        if "error" in setup:
            return {"setup": setup}
    meta = json.loads((work / "meta.json").read_text())
    results = {"model": meta, "n_sequences": n_seq, "seq_len": 128}
    for name, bits in (("fp_reference_job", 4), ("cached_compressed_job", 8)):
        job = _child("gemma-job", *gemma_overrides(work, n_seq, bits))
        if "peak_gib" in job:
            job["peak_rss/model_bytes"] = job["peak_gib"]["VmRSS"] * GIB / meta["model_bytes"]
            job["peak_anon/model_bytes"] = job["peak_gib"]["RssAnon"] * GIB / meta["model_bytes"]
        results[name] = job
        print(name, json.dumps(job), flush=True)
    return results


def run_wide(n_seq: int, repeats: int) -> dict:
    results = {}
    for d_sae in WIDE:
        results[str(d_sae)] = _child("wide", str(d_sae), str(n_seq), str(repeats))
        print(d_sae, json.dumps(results[str(d_sae)]), flush=True)
    return results


def child(args: list[str]) -> None:
    kind, rest = args[0], args[1:]
    if kind == "gemma-setup":
        work = Path(rest[0])
        work.mkdir(parents=True, exist_ok=True)
        with PeakMemory() as memory:
            meta = gemma_setup(work)
        out = {**meta, "setup_peak_gib": memory.gib()}
    elif kind == "gemma-job":
        out = gemma_job(rest)
    else:
        out = wide_child(int(rest[0]), int(rest[1]), int(rest[2]))
    print(json.dumps(out))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", default="gemma,wide")
    parser.add_argument("--n-seq", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/qfeat-real-shapes"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    parts = args.part.split(",")
    report: dict = {"load": load_average(), "cpus": len(os.sched_getaffinity(0))}
    if "gemma" in parts:
        report["gemma"] = run_gemma(args.work, args.n_seq)
    if "wide" in parts:
        report["wide"] = run_wide(args.n_seq, args.repeats)
    report["load_end"] = load_average()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
