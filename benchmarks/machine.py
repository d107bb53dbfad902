"""What every recorded figure is labelled with: the CPU's bf16-relevant flags (machines of this kind
differ: some have AVX512-BF16/AMX, where bf16 autocast is fast, some only AVX2, where it is slow)."""

import subprocess

FLAGS = ("avx512_bf16", "amx_bf16", "avx2")


def cpu_flags() -> str:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return " ".join(flag for flag in FLAGS if f" {flag}" in text) or "no avx2"
