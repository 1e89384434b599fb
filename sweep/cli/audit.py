"""Audit a compressed checkpoint someone ships against the full-precision model it came from.

qfeat-audit base=<model name, HF id or dir> candidate=<HF id or dir, or a .gguf file> \\
    sae=<shipped SAE | SAE-Lens release:id | SAE-Lens dir> [data=<name>] [key=value ...] \\
    [--fail-under 0.9] [--watch 12,345] [--worst 10]

Both checkpoints are measured on identical tokens by the sweep's own job code (the FP
reference of the base model, the measurement pass, result files); the verdict gives ΔPPL, the
class fractions and the most damaged features. `--fail-under F` exits 1 when the fraction of
surviving active features (or of the --watch features) is below F, so the audit can gate a
deployment in CI. Extra `key=value` are Hydra overrides of conf/config.yaml (e.g.
data.n_sequences=256 runtime.device=cuda). A GGUF candidate (llama.cpp's format) must be the base
model's architecture, shapes and vocabulary (checked on its metadata before anything loads); its
dequantized weights are measured in the base model's HF architecture, and llama.cpp's own
forward of the file beside them (summary.json's gguf.deployed).
"""

import argparse
import json
import logging
import re
import sys
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf
from transformers import AutoConfig, AutoTokenizer, PreTrainedModel

from sweep.base import libraries
from sweep.base.errors import QfeatError
from sweep.base.paths import TINY_SAES
from sweep.base.shutdown import skip_final_collection
from sweep.compressors.gguf import read_artifact
from sweep.config.compose import compose_config
from sweep.config.compression import CompressionConfig
from sweep.config.locations import MODEL_PATHS, model_path
from sweep.inputs.gguf_file import check_matches, load_into
from sweep.inputs.models import checkpoint_format, load_hf_model
from sweep.job.compress import Variants, add_deployed, gguf_variant
from sweep.job.keys import plan_job
from sweep.job.run import run
from sweep.job.stages import Loaded, TokenSets
from sweep.results.columns import SURVIVED
from sweep.results.files import FEATURES_FILE
from sweep.results.summary import Summary

VERDICT_COLUMNS = ["sae", "feature", "r", "class", "fp_frequency", "fp_mean_active", "fp_max"]
# Files a saved tokenizer consists of (any one of them: the checkpoint ships a tokenizer).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
CHECKED_CONFIG = (
    "model_type",
    "num_hidden_layers",
    "hidden_size",
    "num_attention_heads",
    "intermediate_size",
    "vocab_size",
)
log = logging.getLogger("qfeat.audit")


def sae_overrides(spec: str) -> list[str]:
    """A shipped SAE config name, `release:id` (an SAE-Lens release) or a local SAE-Lens
    directory -> Hydra overrides."""
    if spec in TINY_SAES:
        return [f"sae={spec}"]
    if Path(spec).is_dir():
        hook = json.loads((Path(spec) / "cfg.json").read_text())["metadata"]["hook_name"]
        return ["sae.name=local", f"sae.path={spec}", f"sae.layer={hook.split('.')[1]}"]
    if ":" not in spec:
        raise QfeatError(
            f"sae={spec!r} is neither a directory, 'release:sae_id' nor one of "
            f"{', '.join(TINY_SAES)}"
        )
    release, sae_id = spec.split(":", 1)
    layer = re.search(r"\d+", sae_id)
    if layer is None:
        raise QfeatError(f"cannot tell the layer of SAE-Lens id {sae_id!r}")
    template = f"{sae_id[: layer.start()]}{{layer}}{sae_id[layer.end() :]}"
    return [
        "sae.name=sae_lens",
        f"sae.release={release}",
        f"sae.sae_id='{template}'",
        f"sae.layer={layer.group()}",
    ]


def audit_config(fields: dict[str, str], overrides: list[str]) -> DictConfig:
    """The job config of an audit, composed from the shipped conf/ like any sweep job."""
    base = fields["base"]
    model = [f"model={base}"] if base in MODEL_PATHS else ["model.name=hf", f"model.path={base}"]
    data = [f"data={fields['data']}"] if "data" in fields else []
    return compose_config(
        [
            *model,
            *sae_overrides(fields["sae"]),
            *data,
            "compression=none",
            f"candidate={fields['candidate']}",
            "sweep_name=audit",
            *overrides,
        ]
    )


def is_gguf(candidate: str) -> bool:
    """Whether the candidate names a GGUF file (llama.cpp's format)."""
    return Path(candidate).suffix == ".gguf"


def check_candidate(candidate: str) -> None:
    """A local candidate must be a checkpoint directory or a GGUF file; checked before any
    model is loaded."""
    path = Path(candidate)
    if is_gguf(candidate):
        if not path.is_file():
            raise QfeatError(f"candidate {candidate!r} is not a file")
        for module in ("gguf", "llama_cpp"):
            libraries.require(module, "a GGUF candidate")
        return
    looks_local = path.is_absolute() or candidate.startswith(".") or path.exists()
    if looks_local and not path.is_dir():
        raise QfeatError(f"candidate {candidate!r} is not a directory")
    if path.is_dir() and not (path / "config.json").is_file():
        raise QfeatError(f"candidate {candidate!r} has no config.json: not an HF checkpoint")


def check_compatible(base: PreTrainedModel, candidate: PreTrainedModel, base_tok, cand_tok):
    """Refuse pairs that are not the same model: architecture, sizes, vocabulary, tokenizer."""
    for name in CHECKED_CONFIG:
        a, b = getattr(base.config, name, None), getattr(candidate.config, name, None)
        if a != b:
            raise QfeatError(f"base and candidate differ in {name}: {a!r} vs {b!r}")
    if cand_tok is not None and cand_tok.get_vocab() != base_tok.get_vocab():
        raise QfeatError("base and candidate tokenizers have different vocabularies")
    if cand_tok is not None and cand_tok.bos_token_id != base_tok.bos_token_id:
        raise QfeatError("base and candidate tokenizers use different BOS tokens")


def check_gguf_candidate(cfg: DictConfig) -> None:
    """A GGUF candidate is the base model's architecture, shapes and vocabulary (its metadata
    against the base's config and tokenizer; no weights are read)."""
    base = model_path(cfg.model)
    vocab = AutoTokenizer.from_pretrained(base).get_vocab()
    check_matches(Path(cfg.candidate), AutoConfig.from_pretrained(base), vocab)


def candidate_tokenizer(candidate: str):
    """The candidate's own tokenizer, or None when it ships none (a local directory without
    tokenizer files: transformers would build an empty tokenizer from config.json alone)."""
    local = Path(candidate)
    if local.is_dir() and not any((local / name).exists() for name in TOKENIZER_FILES):
        return None
    try:
        return AutoTokenizer.from_pretrained(candidate)
    except (OSError, ValueError):
        return None


def load_candidate(
    cfg: DictConfig, _method: CompressionConfig, loaded: Loaded, sets: TokenSets
) -> Variants:
    """The audit's compress stage: the candidate checkpoint, loaded as transformers loads it
    (quantized modules kept: it runs as deployed), checked against the base model. A GGUF
    file is dequantized into the base model, and run by llama.cpp too."""
    if is_gguf(cfg.candidate):
        path = Path(cfg.candidate)
        load_into(loaded.fp_model, path)
        variants = gguf_variant("candidate", loaded.fp_model, loaded.hooked, read_artifact(path))
        add_deployed(variants, list(loaded.saes), sets.tokens.shape[1])
        return variants
    cand_cfg = OmegaConf.merge(cfg.model, {"name": "hf", "path": cfg.candidate})
    candidate = load_hf_model(cand_cfg, loaded.device, cfg.runtime.half_on_cpu)
    cand_tok = candidate_tokenizer(cfg.candidate)
    if cand_tok is None:
        log.warning("candidate has no tokenizer files; using the base model's tokenizer")
    check_compatible(loaded.fp_model, candidate, sets.tokenizer, cand_tok)
    return Variants(
        models={"candidate": loaded.hooked(candidate)}, primary="candidate", n_matrices=0
    )


def verdict(summary: Summary, frame: pd.DataFrame, worst: int) -> str:
    """ΔPPL, class fractions and the most damaged active features, as text (and for a GGUF
    file, the same from llama.cpp's own forward)."""
    m = summary.metrics
    lines = [
        f"perplexity {m.fp_ppl:.3f} -> {m.q_ppl:.3f} (ΔPPL {m.delta_ppl:+.3f}), KL {m.kl_mean:.4g}",
        f"{m.n_active} active features: {100 * m.frac_survived:.1f}% survived, "
        f"{100 * m.frac_blurred:.1f}% blurred, {100 * m.frac_destroyed:.1f}% destroyed",
    ]
    if summary.gguf is not None and (d := summary.gguf.deployed) is not None:
        lines.append(
            f"{summary.gguf.type} at {summary.gguf.bits_per_weight:.3f} bits per weight; as run "
            f"by llama.cpp: {100 * d.frac_survived:.1f}% survived, ΔPPL {d.delta_ppl:+.3f}, "
            f"|Δ log p| vs the weights above {d.logp_gap_mean:.3g} (max {d.logp_gap_max:.3g})"
        )
    damaged = frame[frame["active"]].sort_values("r").head(worst)
    lines.append(f"{len(damaged)} most damaged features:")
    lines.append(damaged[VERDICT_COLUMNS].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit code (0 pass, 1 below --fail-under, 2 bad input)."""
    parser = argparse.ArgumentParser(prog="python -m sweep.cli.audit", description=__doc__)
    parser.add_argument("fields", nargs="+", help="base=… candidate=… sae=… [data=…]")
    parser.add_argument("--fail-under", type=float, default=None)
    parser.add_argument("--worst", type=int, default=10)
    parser.add_argument(
        "--watch",
        type=_feature_ids,
        default=None,
        help="comma-separated feature ids (e.g. refusal features): always reported, and "
        "--fail-under then gates on these features alone",
    )
    args = parser.parse_args(argv)
    skip_final_collection()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    pairs = [f.split("=", 1) for f in args.fields]
    fields = {k: v for k, v in pairs if k in ("base", "reference", "candidate", "sae", "data")}
    overrides = [f for f, (k, _) in zip(args.fields, pairs, strict=True) if k not in fields]
    try:
        if "reference" in fields:
            raise QfeatError("reference= is now base= (the FP model the candidate came from)")
        missing = {"base", "candidate", "sae"} - set(fields)
        if missing:
            raise QfeatError(f"missing {', '.join(sorted(missing))}=…")
        if args.worst < 0:
            raise QfeatError(f"--worst {args.worst}: give how many damaged features to list (>= 0)")
        if args.fail_under is not None and not 0.0 <= args.fail_under <= 1.0:
            raise QfeatError(f"--fail-under {args.fail_under} is outside [0, 1]")
        check_candidate(fields["candidate"])
        if not is_gguf(fields["candidate"]):
            checkpoint_format(fields["candidate"])  # an unknown format fails before any load
        watch = [f"survival.watch=[{','.join(map(str, args.watch))}]"] if args.watch else []
        cfg = audit_config(fields, [*overrides, *watch])
        plan = plan_job(cfg)
        if is_gguf(fields["candidate"]):
            check_gguf_candidate(cfg)
        summary = run(cfg, plan, compress_stage=load_candidate).summary
        out = plan.out
        frame = pd.read_parquet(out / FEATURES_FILE)
        gated, what = frame[frame["active"]], "active features"
        if args.watch:
            gated, what = watched_features(frame, args.watch), "watched features"
    except QfeatError as err:
        print(f"qfeat audit: error: {err}", file=sys.stderr)
        return 2
    print(verdict(summary, frame, args.worst))
    if args.watch:
        print(f"{len(gated)} watched features:")
        print(gated[VERDICT_COLUMNS].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"results: {out}")
    survived = float((gated["class"] == SURVIVED).mean())
    if args.fail_under is not None and survived < args.fail_under:
        print(
            f"FAIL: {100 * survived:.1f}% of {what} survived, below --fail-under {args.fail_under}"
        )
        return 1
    return 0


def _feature_ids(text: str) -> list[int]:
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of ids") from err
    if not ids or min(ids) < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give one or more feature ids >= 0")
    return ids


def watched_features(frame: pd.DataFrame, watch: list[int]) -> pd.DataFrame:
    """The watched features' rows; each must be active on the audit's tokens to be gated on."""
    rows = frame[frame["feature"].isin(watch)]
    silent = sorted(set(rows.loc[~rows["active"], "feature"]))
    if silent:
        raise QfeatError(
            f"watched features {silent} are not active on these tokens (fire on fewer than "
            "survival.min_active_tokens); measure more text (data.n_sequences) or drop them"
        )
    return rows


if __name__ == "__main__":
    sys.exit(main())
