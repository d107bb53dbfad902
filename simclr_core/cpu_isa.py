"""The CPU's instruction-set family as torch sees it, and whether it computes bf16 natively.

This is the one module that reaches torch's private CPU probes (STYLE lesson 14); its names are listed
in PRIVATE_NAMES and `tests/test_cpu_isa.py` fails loudly when a torch release drops one.

Why not `torch.ops.mkldnn._is_mkldnn_bf16_supported()` alone: oneDNN reports bf16 support on any
AVX-512 CPU because it emulates bf16 there, and on a 2-core AVX-512 Xeon without AVX512-BF16 the
emulated bf16 step ran 1.43x slower than fp32 (issue 28). Native bf16 needs AVX512-BF16 or AMX, which
torch reads from cpuinfo (`torch.cpu._is_avx512_bf16_supported`, `_is_amx_tile_supported`).

What the probes honour: cpuinfo reads the hardware, so `ONEDNN_MAX_CPU_ISA` (oneDNN's own cap) and
`ATEN_CPU_CAPABILITY` (ATen's) do not change `isa_family()`. oneDNN's bf16 check does honour its cap
below AVX-512 (`ONEDNN_MAX_CPU_ISA=AVX2` turns it off), so `native_bf16()` asks both; a cap at
`AVX512_CORE`, which keeps oneDNN's bf16 but emulated, is not visible through any of these names.
"""

from __future__ import annotations

import torch

AMX = "AMX"
AVX512_BF16 = "AVX-512 with BF16"
AVX512 = "AVX-512"
AVX2 = "AVX2"
OLDER = "below AVX2"  # x86 without AVX2, or another architecture (ARM, POWER): fp32 by default
FAMILIES = (AMX, AVX512_BF16, AVX512, AVX2, OLDER)  # best first
NATIVE_BF16 = {AMX, AVX512_BF16}

# The private names this module calls, as (object, attribute).
PRIVATE_NAMES = (
    (torch.cpu, "_is_amx_tile_supported"),
    (torch.cpu, "_is_avx512_bf16_supported"),
    (torch.cpu, "_is_avx512_supported"),
    (torch.cpu, "_is_avx2_supported"),
    (torch.ops.mkldnn, "_is_mkldnn_bf16_supported"),
)


def isa_family() -> str:
    """The best of FAMILIES this CPU has, read from torch's cpuinfo (the hardware, whatever the caps)."""
    if torch.cpu._is_amx_tile_supported():
        return AMX
    if torch.cpu._is_avx512_bf16_supported():
        return AVX512_BF16
    if torch.cpu._is_avx512_supported():
        return AVX512
    if torch.cpu._is_avx2_supported():
        return AVX2
    return OLDER


def onednn_bf16() -> bool:
    """Whether oneDNN, as capped in this process, runs bf16 at all (natively or emulated)."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def native_bf16() -> bool:
    """Whether a bf16 convolution runs on native bf16 instructions: AVX512-BF16 or AMX in the CPU, and
    oneDNN not capped below them. The seam `precision: auto` reads on CPU (trainer.bf16_is_fast)."""
    return isa_family() in NATIVE_BF16 and onednn_bf16()


def describe() -> str:
    """One line for benchmark headers, e.g. 'AVX-512 with BF16 (bf16 native)'."""
    if native_bf16():
        bf16 = "bf16 native"
    elif onednn_bf16():
        bf16 = "bf16 emulated by oneDNN"
    else:
        bf16 = "no oneDNN bf16"
    return f"{isa_family()} ({bf16})"
