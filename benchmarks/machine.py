"""What every recorded figure is labelled with: the CPU's bf16-relevant flags from lscpu, and the
instruction-set family as torch sees it (simclr_core.cpu_isa: AMX, AVX-512 with BF16, AVX-512, AVX2),
with whether bf16 runs natively there. Machines of this kind differ: with AVX512-BF16/AMX bf16 autocast is
fast and `precision: auto` picks it; on AVX-512 without BF16 and on AVX2 oneDNN emulates bf16, slower
than fp32, and auto trains in fp32."""

import subprocess

FLAGS = ("avx512_bf16", "amx_bf16", "avx512f", "avx2")


def lscpu_flags() -> str:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return " ".join(flag for flag in FLAGS if f" {flag}" in text) or "no avx2"


def cpu_flags() -> str:
    """e.g. 'avx512_bf16 avx512f avx2; torch: AVX-512 with BF16 (bf16 native)'."""
    from simclr_core import cpu_isa  # imports torch: only when a header is printed

    return f"{lscpu_flags()}; torch: {cpu_isa.describe()}"
