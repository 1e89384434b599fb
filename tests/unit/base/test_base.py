"""The bottom layer: one error line, one hook-name parser, content digests, atomic files."""

import pytest

from sweep.base.errors import QfeatError, one_line
from sweep.base.fingerprint import content_digest, file_digest, sha256_file
from sweep.base.hooks import hook_layer, hook_name, parse_hook


def test_one_line_folds_every_error_to_one_line() -> None:
    assert one_line(QfeatError("bad\n  value")) == "bad value"
    assert one_line(ValueError("a\nb")) == "ValueError: a b"
    assert one_line("  several\n\nlines ") == "several lines"
    assert one_line(RuntimeError()) == "RuntimeError:"


def test_one_hook_parser() -> None:
    assert hook_name(3) == "blocks.3.hook_resid_post" and hook_layer(hook_name(3)) == 3
    assert parse_hook("blocks.2.hook_resid_pre", 4) == (2, "pre")
    assert hook_layer("blocks.2.hook_mlp_out") is None and hook_layer("embed") is None
    with pytest.raises(QfeatError, match="is not measured"):
        parse_hook("blocks.2.hook_mlp_out", 4)
    with pytest.raises(QfeatError, match="does not exist in a model with 4 layers"):
        parse_hook("blocks.4.hook_resid_post", 4)


def test_digests_follow_content_not_paths(tmp_path) -> None:
    for name in ("a", "b"):
        (tmp_path / name / ".cache").mkdir(parents=True)
        (tmp_path / name / "w.bin").write_bytes(b"weights")
        (tmp_path / name / ".cache" / "lock").write_text(name)  # hidden: ignored
    assert content_digest(tmp_path / "a") == content_digest(tmp_path / "b")
    assert file_digest(tmp_path / "a" / "w.bin") == sha256_file(tmp_path / "b" / "w.bin")
    (tmp_path / "b" / "w.bin").write_bytes(b"weightz")
    assert content_digest(tmp_path / "a") != content_digest(tmp_path / "b")
    assert content_digest(None) is None and content_digest(tmp_path / "absent") is None
