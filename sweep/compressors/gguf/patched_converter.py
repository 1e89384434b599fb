"""llama.cpp's convert_hf_to_gguf.py, run as its own command line with two run-time patches.

    python patched_converter.py LLAMA_CPP_SOURCE HF_DIR OUTFILE

Started in a subprocess by sweep.compressors.gguf.convert (so the converter's vendored gguf-py,
which it puts first on sys.path, never mixes with the gguf-py qfeat reads files with). It
imports nothing from qfeat. Each patch only supplies what the converter cannot read, and
changes nothing else:

1. GPT-NeoX's `rotary_pct`: the converter reads hparams["rotary_pct"], which transformers 5
   keeps as rope_parameters.partial_rotary_factor; and it never writes rope_theta for GPT-NeoX
   (llama.cpp then assumes 10000), so the config's rope_theta is written as rope.freq_base.
2. The BPE pre-tokenizer: the converter recognises tokenizers by the hash of the ids of a fixed
   text and refuses any other. A tokenizer.json that is plain GPT-2 byte-level BPE (ByteLevel
   pre-tokenizer with its regex, no prefix space, no normalizer), which is exactly llama.cpp's
   "gpt-2" pre-tokenizer, is converted as "gpt-2"; any other unknown tokenizer is still refused.
"""

import json
import logging
import sys
from pathlib import Path

log = logging.getLogger("qfeat-gguf")


def plain_gpt2_bpe(model_dir: Path) -> bool:
    """Whether tokenizer.json is GPT-2's byte-level BPE, with nothing before or around it."""
    path = model_dir / "tokenizer.json"
    if not path.is_file():
        return False
    tok = json.loads(path.read_text(encoding="utf-8"))
    pre = tok.get("pre_tokenizer") or {}
    if pre.get("type") == "Sequence" and len(pre.get("pretokenizers", [])) == 1:
        pre = pre["pretokenizers"][0]
    return (
        tok.get("normalizer") is None
        and (tok.get("model") or {}).get("type") == "BPE"
        and pre.get("type") == "ByteLevel"
        and pre.get("use_regex", True) is True
        and pre.get("add_prefix_space", False) is False
    )


def patch_gptneox(gptneox) -> None:
    """Patch 1: rotary_pct from partial_rotary_factor, rope_theta as rope.freq_base."""
    original = gptneox.GPTNeoXModel.set_gguf_parameters

    def set_gguf_parameters(self) -> None:
        hp = self.hparams
        rope = hp.get("rope_parameters") or {}
        if "rotary_pct" not in hp:
            pct = rope.get("partial_rotary_factor", hp.get("partial_rotary_factor"))
            if pct is None:
                raise KeyError("the config has neither rotary_pct nor partial_rotary_factor")
            hp["rotary_pct"] = pct
        original(self)
        theta = rope.get("rope_theta", hp.get("rope_theta", hp.get("rotary_emb_base")))
        if theta is not None:
            self.gguf_writer.add_rope_freq_base(float(theta))

    gptneox.GPTNeoXModel.set_gguf_parameters = set_gguf_parameters


def patch_pre_tokenizer(base) -> None:
    """Patch 2: an unrecognised but plain GPT-2 byte-level BPE tokenizer is 'gpt-2'."""
    original = base.TextModel.get_vocab_base_pre

    def get_vocab_base_pre(self, tokenizer) -> str:
        try:
            return original(self, tokenizer)
        except NotImplementedError:
            if not plain_gpt2_bpe(Path(self.dir_model)):
                raise
            log.warning("unrecognised tokenizer hash; plain GPT-2 byte-level BPE: 'gpt-2'")
            return "gpt-2"

    base.TextModel.get_vocab_base_pre = get_vocab_base_pre


def main(source: str, model_dir: str, outfile: str) -> None:
    """Patch the converter of the llama.cpp tree `source`, then run its command line."""
    sys.path[:1] = [source, str(Path(source) / "gguf-py")]  # not this file's directory
    import conversion.base
    import conversion.gptneox
    import convert_hf_to_gguf

    patch_gptneox(conversion.gptneox)
    patch_pre_tokenizer(conversion.base)
    sys.argv = ["convert_hf_to_gguf.py", model_dir, "--outfile", outfile, "--outtype", "f32"]
    convert_hf_to_gguf.main()


if __name__ == "__main__":
    main(*sys.argv[1:])
