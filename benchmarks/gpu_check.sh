#!/usr/bin/env bash
# The CUDA path in one short run (under 5 minutes on one H100/H200-class GPU): the CUDA tests, the
# throughput benchmark on the GPU, seconds per ResNet-18 CIFAR epoch (eager and compiled), and one short
# cell of studies/aug_pairs_gpu.yaml through the runner. Prints the figures; exits non-zero on a failure.
#
#   bash benchmarks/gpu_check.sh            # from the repository root, in its virtual environment
set -euo pipefail
cd "$(dirname "$0")/.."
export SIMCLR_DATA="${SIMCLR_DATA:-$(cd .. && pwd)/shared/datasets}"
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(), torch.__version__)"
echo "== CUDA tests"
python -m pytest -q -p no:cacheprovider tests/test_augmentations.py tests/test_trainer.py -k "cuda or CUDA"
echo "== throughput on the GPU (small CNN, then ResNet-18 CIFAR)"
python benchmarks/throughput.py --device cuda --batches 10 --batch-size 512 | tail -7
python benchmarks/throughput.py --device cuda --batches 10 --batch-size 512 --encoder resnet18_cifar | tail -7
echo "== seconds per epoch, ResNet-18 CIFAR, 50,000 images, batch 512"
python benchmarks/gpu_epoch.py --epochs 2
echo "== one short aug_pairs_gpu cell through the runner (crop->color, 2 epochs, 1 seed)"
tmp=$(mktemp -d)
python - "$tmp/short.yaml" <<'PY'
import sys, yaml
study = yaml.safe_load(open("studies/aug_pairs_gpu.yaml"))
study.update(name="aug_pairs_gpu_check", seeds=[0], search={"sampler": "grid", "pairs": ["crop", "color"]})
study.pop("confirm", None)
study["base"]["train"]["epochs"] = 2
yaml.safe_dump(study, open(sys.argv[1], "w"))
PY
python -m ablations.run "$tmp/short.yaml" --runs-dir "$tmp/runs" --tracking-uri "sqlite:///$tmp/mlflow.db" \
  --no-progress --no-report 2>&1 | tail -8
