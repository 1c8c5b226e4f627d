import logging

import pytest

from embrm.rm.precision import cpu_flags, resolve


@pytest.mark.parametrize(
    "flags, expected",
    [
        ({"avx2", "fma"}, "fp32"),
        ({"avx2", "avx512f", "avx512_bf16"}, "bf16"),
        ({"avx2", "amx_bf16", "amx_tile"}, "bf16"),
        (set(), "fp32"),
    ],
)
def test_auto_picks_bf16_only_with_native_bf16_gemm(flags, expected, caplog):
    with caplog.at_level(logging.INFO, logger="embrm.rm.precision"):
        assert resolve("auto", frozenset(flags)) == expected
    assert f"precision auto -> {expected}" in caplog.text


def test_explicit_precision_is_kept_and_unknown_refused():
    assert resolve("fp32", frozenset({"avx512_bf16"})) == "fp32"
    assert resolve("bf16", frozenset()) == "bf16"
    with pytest.raises(ValueError, match="fp16"):
        resolve("fp16")


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\n")
    assert cpu_flags(info) == {"fpu", "avx2", "avx512_bf16"}
    assert cpu_flags(tmp_path / "missing") == frozenset()
