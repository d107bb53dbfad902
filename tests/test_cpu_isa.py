"""simclr_core.cpu_isa: torch's private CPU probes are still there (a torch release that drops one fails
here, not as a silently wrong precision), and the family and native-bf16 answers follow them."""

import os
import subprocess
import sys

import pytest
import torch

from simclr_core import cpu_isa


@pytest.mark.parametrize("owner, name", cpu_isa.PRIVATE_NAMES, ids=lambda value: getattr(value, "__name__", value))
def test_the_private_probes_exist_in_this_torch(owner, name):
    probe = getattr(owner, name, None)
    assert callable(probe), f"torch no longer has {name}: update simclr_core/cpu_isa.py"
    assert isinstance(probe(), bool)


def test_this_machine_has_a_family():
    assert cpu_isa.isa_family() in cpu_isa.FAMILIES
    assert cpu_isa.describe().startswith(cpu_isa.isa_family())


@pytest.mark.parametrize("amx, avx512_bf16, avx512, avx2, family", [
    (True, True, True, True, cpu_isa.AMX),
    (False, True, True, True, cpu_isa.AVX512_BF16),
    (False, False, True, True, cpu_isa.AVX512),
    (False, False, False, True, cpu_isa.AVX2),
    (False, False, False, False, cpu_isa.OLDER),
])
def test_family_and_native_bf16_follow_torchs_flags(monkeypatch, amx, avx512_bf16, avx512, avx2, family):
    for name, value in [("_is_amx_tile_supported", amx), ("_is_avx512_bf16_supported", avx512_bf16),
                        ("_is_avx512_supported", avx512), ("_is_avx2_supported", avx2)]:
        monkeypatch.setattr(torch.cpu, name, lambda value=value: value)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)  # oneDNN emulates if need be
    assert cpu_isa.isa_family() == family
    assert cpu_isa.native_bf16() == (family in (cpu_isa.AMX, cpu_isa.AVX512_BF16))
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)  # oneDNN capped below
    assert not cpu_isa.native_bf16()


@pytest.mark.skipif(not cpu_isa.native_bf16(), reason="needs a CPU with native bf16 to cap")
def test_capping_onednn_to_avx2_makes_auto_train_in_fp32():
    """For real, in a fresh process: ONEDNN_MAX_CPU_ISA=AVX2 takes oneDNN's bf16 away, and auto follows.
    (A cap at AVX512_CORE is not visible to torch's probes: see cpu_isa's docstring.)"""
    code = ("import torch; from simclr_core import cpu_isa; from simclr_core.config import TrainConfig; "
            "from simclr_core.trainer import numeric_settings; "
            "print(cpu_isa.describe(), numeric_settings(TrainConfig(), torch.device('cpu'))[0])")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}).stdout.strip()
    assert output == f"{cpu_isa.isa_family()} (no oneDNN bf16) None"
