"""compression=gguf against llama.cpp itself: the weights qfeat measures are ggml's own C
dequantization of the file llama.cpp's quantizer wrote, bit for bit; every block holds values of
its type's code book; the read-back round-trips an F32 file exactly; the importance matrix is
the statistic of the model's own activations. llama_cpp and gguf are hard dependencies of the
suite (`pip install -e '.[dev]'` brings them): imported here, never skipped."""

import copy
from functools import cache
from pathlib import Path

import gguf
import llama_cpp  # noqa: F401 (a missing llama.cpp fails collection, never skips)
import numpy as np
import pytest
import torch
from ggml_oracle import c_dequantize
from tiny_compressed import fp_and_calibration

from conftest import method
from sweep.base.errors import QfeatError
from sweep.compressors import compress_model
from sweep.compressors.gguf import GGUFArtifact, quantize_model
from sweep.compressors.gguf.convert import run_converter, save_checkpoint, source_gguf
from sweep.compressors.gguf.imatrix import importance_matrix
from sweep.config.compression import GGUF_IMATRIX_TYPES, GGUF_TYPES
from sweep.inputs.gguf_file import dequantized, gguf_names, load_into, qkv_to_hf

# Non-linear code book of IQ4_NL and IQ4_XS (ggml-common.h: kvalues_iq4nl).
IQ4_CODES = np.array([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113])
# ggml type -> (bytes per 32-block, the integer codes a block scale multiplies): value = d·q.
SCALED_CODES = {
    "Q8_0": (34, np.arange(-128, 128)),
    "Q4_0": (18, np.arange(-8, 8)),
    "Q5_0": (22, np.arange(-16, 16)),
    "IQ4_NL": (18, IQ4_CODES),
}
# ggml type -> (bytes per 32-block, codes): value = d·q + m (d, m the block's two fp16).
OFFSET_CODES = {"Q4_1": (20, np.arange(16)), "Q5_1": (24, np.arange(32))}
# Super-block types -> (sub-block length, most distinct values in a sub-block): 2^bits. (No
# tensor of tiny is stored as Q2_K: the Q2_K mix gives its 128-wide rows Q4_0, ffn_down Q3_K.)
SUB_BLOCKS = {"Q3_K": (16, 8), "Q4_K": (32, 16), "Q5_K": (32, 32)}
SUB_BLOCKS["IQ4_XS"] = (32, 16)


@cache
def quantized(type_name: str, imatrix: bool = False) -> tuple[torch.nn.Module, GGUFArtifact]:
    """tiny quantized to `type_name` (cached), and the file llama.cpp wrote."""
    fp, calibration = fp_and_calibration()
    model = copy.deepcopy(fp)
    options = [f"compression.type={type_name}", f"compression.imatrix={str(imatrix).lower()}"]
    artifact = quantize_model(model, method("compression=gguf", *options), calibration)
    return model, artifact


def test_an_f32_file_reads_back_bit_identical() -> None:
    fp, _ = fp_and_calibration()
    model, artifact = quantized("F32")
    for name, value in fp.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    assert artifact.bits_per_weight == 32 and artifact.n_quantized == 0


@pytest.mark.parametrize("type_name", ["Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q2_K"])
def test_weights_are_ggml_c_dequantization_of_the_file(type_name: str) -> None:
    """Every parameter of the measured model equals ggml's to_float of the file's bytes."""
    model, artifact = quantized(type_name)
    by_gguf = {g: hf for hf, g in gguf_names(model).items()}
    params = dict(model.named_parameters())
    for t in gguf.GGUFReader(str(artifact.path)).tensors:
        shape = tuple(int(x) for x in reversed(t.shape))
        values = c_dequantize(t.data, int(t.tensor_type), int(t.n_elements)).reshape(shape)
        name = by_gguf[t.name]
        if ".query_key_value." in name:
            values = qkv_to_hf(values, model.config.num_attention_heads)
        got = params[name].detach().numpy()
        assert np.array_equal(got.view(np.uint32), values.view(np.uint32)), (type_name, name)


def test_every_type_quantizes_and_reads_back() -> None:
    """Each listed type runs on CPU; K-quants on tiny's 128-wide rows fall back (honestly)."""
    for type_name in GGUF_TYPES:
        _, artifact = quantized(type_name)
        assert artifact.type == type_name and artifact.n_fallback is not None
        assert 4 < artifact.bits_per_weight <= 32, type_name
    # Only ffn_down (512-wide rows) takes a 256-block type; every other matrix falls back.
    _, q4km = quantized("Q4_K_M")
    assert q4km.matrix_types == {"Q5_0": 11, "Q8_0": 3, "Q4_K": 2, "Q6_K": 2}
    assert q4km.n_fallback == 13


def block_view(values: np.ndarray, raw: np.ndarray, block_bytes: int, length: int = 32):
    """A tensor's values and stored bytes as [blocks, length] and [blocks, block_bytes]."""
    raw = np.ascontiguousarray(raw).view(np.uint8).reshape(-1, block_bytes)
    return values.reshape(len(raw), -1), raw


def test_every_block_holds_values_of_its_type_code_book() -> None:
    seen = set()
    for type_name in ("Q8_0", "Q4_K_M", "Q5_K_M", "Q2_K", "Q3_K_S", "IQ4_NL", "IQ4_XS", "Q4_1"):
        _, artifact = quantized(type_name)
        values = dequantized(artifact.path)
        for t in gguf.GGUFReader(str(artifact.path)).tensors:
            x, kind = values[t.name][0].reshape(-1).astype(np.float64), t.tensor_type.name
            if kind in SCALED_CODES or kind in OFFSET_CODES:
                size, codes = {**SCALED_CODES, **OFFSET_CODES}[kind]
                blocks, raw = block_view(x, t.data, size)
                d = raw[:, :2].copy().view(np.float16).astype(np.float64)
                m = raw[:, 2:4].copy().view(np.float16).astype(np.float64)
                q = (blocks - m) / d if kind in OFFSET_CODES else blocks / d
                q = q[(d != 0).reshape(-1)]
                nearest = codes[np.abs(q[..., None] - codes).argmin(-1)]
                assert np.abs(q - nearest).max() < 1e-3, (type_name, t.name, kind)
            elif kind in SUB_BLOCKS:
                length, most = SUB_BLOCKS[kind]
                for block in x.reshape(-1, length):
                    assert len(np.unique(block)) <= most, (type_name, t.name, kind)
            else:
                continue
            seen.add(kind)
    assert seen == set(SCALED_CODES) | set(OFFSET_CODES) | set(SUB_BLOCKS)


def test_importance_matrix_is_the_mean_squared_input_of_each_linear() -> None:
    """llama.cpp's activations, collected through its evaluation callback, against the HF
    model's own nn.Linear inputs on the same calibration sequences (forward hooks)."""
    fp, calibration = fp_and_calibration()
    values = importance_matrix(source_gguf(fp), calibration.numpy(), threads=2)
    names = gguf_names(fp)
    hf = {}
    hooks = []
    for module_name, module in fp.named_modules():
        if isinstance(module, torch.nn.Linear) and f"{module_name}.weight" in names:
            gname = names[f"{module_name}.weight"]

            def keep(_m, args, _out, gname=gname):
                x = args[0].detach().double().reshape(-1, args[0].shape[-1])
                hf.setdefault(gname, []).append(x)

            hooks.append(module.register_forward_hook(keep))
    with torch.no_grad():
        for row in calibration:
            fp(row[None], use_cache=False)
    for h in hooks:
        h.remove()
    expected = {k: torch.cat(v).pow(2).mean(0).numpy() for k, v in hf.items()}
    assert set(values) == {k for k in expected if k.startswith("blk.")}
    for name, got in values.items():
        np.testing.assert_allclose(got, expected[name], rtol=5e-3, atol=1e-6, err_msg=name)


def test_an_importance_matrix_changes_what_llama_cpp_writes() -> None:
    plain = dequantized(quantized("Q3_K_M")[1].path)
    weighted = dequantized(quantized("Q3_K_M", imatrix=True)[1].path)
    changed = [n for n in plain if not np.array_equal(plain[n][0], weighted[n][0])]
    assert any(".ffn_down." in n for n in changed) and "token_embd.weight" not in changed


def test_fp_embeddings_keep_embedding_and_output_f32() -> None:
    fp, calibration = fp_and_calibration()
    model = copy.deepcopy(fp)
    cfg = method("compression=gguf", "compression.type=Q4_0", "compression.fp_embeddings=true")
    artifact = quantize_model(model, cfg, calibration)
    assert artifact.tensors["token_embd.weight"].ggml_type == "F32"
    assert artifact.tensors["output.weight"].ggml_type == "F32"
    assert torch.equal(model.gpt_neox.embed_in.weight, fp.gpt_neox.embed_in.weight)
    assert artifact.n_quantized == 16  # the block matrices, as every other method


def test_registered_apply_writes_the_dequantized_weights() -> None:
    fp, calibration = fp_and_calibration()
    model = copy.deepcopy(fp)
    compress_model(model, method("compression=gguf", "compression.type=Q8_0"), calibration)
    reference, _ = quantized("Q8_0")
    for name, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["compression.type=Q4_K_X"], "compression.type='Q4_K_X' is not a GGUF type qfeat runs"),
        (["compression.type=IQ2_XXS"], "IQ2_XXS needs an importance matrix"),
        (["compression.type=q4_k_m"], "is not a GGUF type"),
    ],
)
def test_bad_types_are_one_line(overrides: list[str], message: str) -> None:
    with pytest.raises(QfeatError, match=message):
        method("compression=gguf", *overrides)


def test_every_imatrix_type_is_refused_by_llama_cpp_without_one(tmp_path: Path) -> None:
    """The list of types that need an importance matrix is llama.cpp's, not a guess."""
    from sweep.compressors.gguf.quantize import quantize

    fp, _ = fp_and_calibration()
    for type_name in GGUF_IMATRIX_TYPES:
        with pytest.raises(QfeatError, match="requires an imatrix"):
            quantize(source_gguf(fp), tmp_path / "x.gguf", type_name, threads=2)


def test_a_model_the_converter_does_not_know_is_one_line(tmp_path: Path) -> None:
    save_checkpoint(fp_and_calibration()[0], tmp_path / "hf")
    config = tmp_path / "hf" / "config.json"
    config.write_text(config.read_text().replace("GPTNeoXForCausalLM", "FooBarForCausalLM"))
    with pytest.raises(QfeatError, match=r"converter cannot convert this model: .*FooBar"):
        run_converter(tmp_path / "hf", tmp_path / "out.gguf")


def test_a_model_qfeat_cannot_read_back_is_refused_before_loading(tmp_path: Path) -> None:
    from conftest import compose_config
    from sweep.config.validate import validate

    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    cfg = compose_config(["compression=gguf", "model.name=hf", f"model.path={tmp_path}"])
    with pytest.raises(QfeatError, match="reads GGUF weights back into gpt_neox models"):
        validate(cfg)


def test_read_back_refuses_a_file_of_another_model(tmp_path: Path) -> None:
    fp, _ = fp_and_calibration()
    writer = gguf.GGUFWriter(str(tmp_path / "other.gguf"), "gptneox")
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(QfeatError, match="does not hold this model's tensors"):
        load_into(copy.deepcopy(fp), tmp_path / "other.gguf")
