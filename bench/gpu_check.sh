#!/usr/bin/env bash
# The GPU checks in one call on a CUDA machine whose python3 has torch (the device tool's):
# the CUDA tests, then GPT-2 124M (context 1024, bf16) through the bare training step
# (bench/train_speed.py) eager and compiled, compiled with the plain full-logits loss as the
# fused head loss's peer, and through the whole training loop
# (bench/train_loop_speed.py). Logs go to $OUT (or /tmp/gpu_check).
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
out=${OUT:-/tmp/gpu_check}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$out/gpu.txt"
python3 -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name())'

timeout 240 python3 -m pytest tests/test_cuda.py -q -p no:cacheprovider -o addopts="" \
    >"$out/pytest.txt" 2>&1
tail -n 15 "$out/pytest.txt"

gpt2=(--device cuda --dtype bfloat16 --n-layer 12 --n-head 12 --n-embd 768 --block-size 1024
      --steps 20 --warmup 5)
runs=("--batch-size 16" "--batch-size 16 --compile" "--batch-size 32 --compile"
      "--batch-size 32 --compile --loss plain")
for i in "${!runs[@]}"; do
    log="$out/train_speed_$i.txt"
    # shellcheck disable=SC2086
    timeout 180 python3 bench/train_speed.py "${gpt2[@]}" ${runs[$i]} >"$log" 2>&1
    echo "[${runs[$i]}] rc=$? $(grep -E '^([0-9.]+M params|train_speed:)' "$log" | tr '\n' ' ')"
done
timeout 180 python3 bench/train_loop_speed.py --model gpt2 --device cuda --compile \
    --batch-size 32 --steps 20 --warmup 5 >"$out/train_loop_speed.txt" 2>&1
tail -n 3 "$out/train_loop_speed.txt"
