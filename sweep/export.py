"""Write the compressed checkpoint of any `compression=` config, e.g. as an audit's candidate.

python -m sweep.export OUT_DIR [key=value ...]

`key=value` are Hydra overrides of conf/config.yaml, exactly as for launch.py (compression=rtn
bits=3, model=…). The model is compressed by the sweep's own code and saved with
save_pretrained beside its tokenizer, so `qfeat-audit candidate=OUT_DIR` can load it.
"""

import argparse
import sys
from pathlib import Path

from sweep.compose import compose_config
from sweep.compressors.variants import build_variants
from sweep.data import build_token_sets
from sweep.errors import QfeatError
from sweep.models import load_hf_model, load_tokenizer, resolve_device
from sweep.record import check_writable
from sweep.schema import validate


def export(out: Path, overrides: list[str]) -> str:
    """Compress the configured model and save it to `out`; returns a one-line description."""
    cfg = compose_config(overrides)
    validate(cfg)
    check_writable(out)
    tokenizer = load_tokenizer(cfg.model)
    n_calibration = cfg.compression.calibration_sequences if cfg.compression.match else 0
    _, calibration = build_token_sets(cfg.data, tokenizer, n_calibration)
    model = load_hf_model(cfg.model, resolve_device(cfg.runtime.device))
    variants = build_variants(cfg, model, lambda m: m, calibration, cfg.runtime.batch_size)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    sparsity = "" if variants.sparsity is None else f", sparsity {variants.sparsity:.3f}"
    return (
        f"{cfg.model.name} with compression={variants.primary} bits={cfg.bits}{sparsity} "
        f"({variants.n_matrices} matrices) -> {out}"
    )


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: 0 on success, 2 on bad input."""
    parser = argparse.ArgumentParser(prog="python -m sweep.export", description=__doc__)
    parser.add_argument("out", type=Path, help="directory to write the checkpoint to")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. compression=rtn bits=3")
    args = parser.parse_args(argv)
    try:
        print(f"wrote {export(args.out, args.overrides)}")
    except QfeatError as err:
        print(f"qfeat export: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
