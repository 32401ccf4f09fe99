#!/usr/bin/env bash
# One command for a GPU machine with PyTorch 2.11 (CUDA) installed: the paper configuration's
# training step in fp32 and bf16, on one GPU and (when there are several) on all of them with
# torchrun, for cmedl and for the PyTorch reference (DistributedDataParallel on several GPUs,
# cudnn.benchmark on); the numbers are appended to BENCHMARKS.md with the GPU's name.
#
#   benches/gpu.sh [path/to/cmedl]        (default: target/release/cmedl)
#
# Build cmedl for it with `cargo build --release -p cmedl-cli --features nccl` (after
# `cargo xtask fetch-libtorch --nccl`) so that several GPUs talk over NCCL.
set -euo pipefail
cd "$(dirname "$0")/.."
CMEDL=${1:-target/release/cmedl}
PYTHON=${PYTHON:-python3}
STEPS=${STEPS:-50}
TORCH_LIB=$("$PYTHON" -c 'import torch, os; print(os.path.dirname(torch.__file__) + "/lib")')
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
NGPU=$(nvidia-smi -L | wc -l)
"$CMEDL" doctor --device cuda
OUT=$(mktemp)
run() { "$@" | grep '^{' >> "$OUT"; }
for precision in fp32 bf16; do
  flag=""; [ "$precision" = bf16 ] && flag="--bf16"
  run "$CMEDL" bench --what train --config paper --device cuda --steps "$STEPS" --precision "$precision"
  run "$PYTHON" benches/reference/cmedl_step.py --config paper --device cuda --steps "$STEPS" $flag
  if [ "$NGPU" -gt 1 ]; then
    run "$PYTHON" -m torch.distributed.run --standalone --nproc-per-node "$NGPU" --no-python \
      "$CMEDL" bench --what train --config paper --device cuda --steps "$STEPS" --precision "$precision"
    run "$PYTHON" -m torch.distributed.run --standalone --nproc-per-node "$NGPU" \
      benches/reference/cmedl_step.py --config paper --device cuda --steps "$STEPS" $flag
  fi
done
"$PYTHON" - "$OUT" "$GPU" "$NGPU" >> BENCHMARKS.md <<'PY'
import json, sys
path, gpu, ngpu = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = [json.loads(l) for l in open(path)]
def rate(impl, precision, world):
    for r in rows:
        if (r["impl"], r["precision"], r.get("world_size", 1)) == (impl, precision, world):
            return r["slices_per_s"]
    return float("nan")
print(f"\n### Paper configuration on {gpu} ({ngpu} GPU{'s' if ngpu > 1 else ''})\n")
print("| precision | GPUs | cmedl slices/s | PyTorch slices/s | cmedl / PyTorch | cmedl scaling efficiency |")
print("|---|---|---|---|---|---|")
for precision in ("fp32", "bf16"):
    for world in sorted({1, ngpu}):
        c, p = rate("cmedl", precision, world), rate("pytorch", precision, world)
        eff = c / (world * rate("cmedl", precision, 1)) if world > 1 else 1.0
        print(f"| {precision} | {world} | {c:.1f} | {p:.1f} | {c / p:.2f} | {100 * eff:.0f} % |")
PY
echo "appended to BENCHMARKS.md:"; tail -8 BENCHMARKS.md
