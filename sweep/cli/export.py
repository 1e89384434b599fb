"""Write the compressed checkpoint of any `compression=` config, e.g. as an audit's candidate.

qfeat-export OUT_DIR [--config-dir DIR] [key=value ...]

`key=value` are Hydra overrides of conf/config.yaml, exactly as for launch.py (compression=rtn
bits=3, model=…); `--config-dir DIR` adds a config directory as launch.py's does (a qfeat-plan
OUT: `qfeat-export CKPT --config-dir OUT compression=plan`). The model is compressed by the
job's own stages (same tokens, same calibration slice) and saved with save_pretrained beside
its tokenizer, so `qfeat-audit candidate=OUT_DIR` loads it as transformers does and measures
what the sweep measured. A mixed config of per-channel symmetric RTN (a qfeat-plan's) is saved
in compressed-tensors' pack-quantized format with qfeat's own scales (exact:
sweep/compressors/ct_format.py). With compression=gguf, an OUT ending in .gguf is the GGUF file
llama.cpp wrote (what llama.cpp and the apps built on it load; `qfeat-audit
candidate=OUT.gguf`).
"""

import argparse
import shutil
import sys
from dataclasses import replace
from pathlib import Path

from sweep.base.atomic import check_writable
from sweep.base.errors import QfeatError
from sweep.base.shutdown import skip_final_collection
from sweep.compressors.ct_format import exact_in_format, rtn_scales, save_rtn_compressed
from sweep.config.compose import compose_config, search_path
from sweep.config.compression import GGUFConfig, MixedConfig
from sweep.config.validate import validate
from sweep.inputs.models import load_hf_model, resolve_device
from sweep.job.compress import build_variants
from sweep.job.stages import load_tokens


def export(out: Path, overrides: list[str], config_dirs: list[Path] | None = None) -> str:
    """Compress the configured model and save it to `out`; returns a one-line description.
    `config_dirs` are searched for config files too (a plan's OUT: compression=plan)."""
    cfg = compose_config([*search_path(config_dirs or []), *overrides])
    method = validate(cfg)
    gguf_file = out.suffix == ".gguf"
    if gguf_file and not isinstance(method, GGUFConfig):
        raise QfeatError(f"{out} is a GGUF file name: only compression=gguf writes one")
    check_writable(out.parent if gguf_file else out)
    sets = load_tokens(cfg, method)
    model = load_hf_model(cfg.model, resolve_device(cfg.runtime.device), cfg.runtime.half_on_cpu)
    if isinstance(method, GGUFConfig):
        method = replace(method, deployed=False)  # nothing is measured here
    ct_rtn = isinstance(method, MixedConfig) and exact_in_format(method)
    scales = rtn_scales(model, method) if ct_rtn else {}
    variants = build_variants(method, model, lambda m: m, sets.calibration, cfg.runtime.batch_size)
    if gguf_file:
        shutil.copyfile(variants.gguf.path, out)
    elif ct_rtn:  # compressed-tensors' pack-quantized format, holding qfeat's RTN exactly
        save_rtn_compressed(model, method, scales, out)
        sets.tokenizer.save_pretrained(out)
    else:
        model.save_pretrained(out)
        sets.tokenizer.save_pretrained(out)
    bits = "" if method.weight_bits is None else f" at {method.weight_bits} bits"
    if variants.gguf is not None:
        bits = f" {variants.gguf.type} at {variants.gguf.bits_per_weight:.3f} bits per weight"
    sparsity = "" if variants.sparsity is None else f", sparsity {variants.sparsity:.3f}"
    return (
        f"{cfg.model.name} with compression={method.name}{bits}{sparsity} "
        f"({variants.n_matrices} matrices) -> {out}"
    )


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: 0 on success, 2 on bad input."""
    parser = argparse.ArgumentParser(prog="qfeat-export", description=__doc__)
    parser.add_argument(
        "out", type=Path, help="directory to write the checkpoint to (compression=gguf: or a .gguf)"
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. compression=rtn bits=3")
    parser.add_argument(
        "--config-dir",
        type=Path,
        action="append",
        default=[],
        help="another config directory, as launch.py's (a qfeat-plan OUT: compression=plan)",
    )
    args = parser.parse_intermixed_args(argv)  # --config-dir before or among the overrides
    skip_final_collection()
    try:
        print(f"wrote {export(args.out, args.overrides, args.config_dir)}")
    except QfeatError as err:
        print(f"qfeat export: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
