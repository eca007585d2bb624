#!/usr/bin/env bash
# Issue 19's second device call, after bench/gpu_steps.sh: eager vs compiled losses per loss
# (bench/compile_parity.py), tests/test_cuda.py, and the whole loop with the model's own loss
# (plain when compiled) at batch 64 and 32. Logs to $OUT (or /tmp/gpu_recheck).
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor-cache
out=${OUT:-/tmp/gpu_recheck}
mkdir -p "$out"
loop=(bench/train_loop_speed.py --model gpt2 --device cuda --dtype bfloat16 --compile
      --steps 20 --warmup 5)
timeout 90 python3 "${loop[@]}" --batch-size 64 >"$out/loop_b64_auto.txt" 2>&1
echo "[loop_b64_auto] rc=$? $(grep -hE 'ms/step|^train_loop_speed:' "$out/loop_b64_auto.txt" | tr '\n' ' ')"
timeout 70 python3 "${loop[@]}" --batch-size 32 >"$out/loop_b32_auto.txt" 2>&1
echo "[loop_b32_auto] rc=$? $(grep -hE 'ms/step|^train_loop_speed:' "$out/loop_b32_auto.txt" | tr '\n' ' ')"
timeout 100 python3 -m pytest tests/test_cuda.py -q -p no:cacheprovider -o addopts="" \
    >"$out/tests.txt" 2>&1
echo "[tests] rc=$?"; grep -E '^(FAILED|E  )|passed|failed' "$out/tests.txt" | head -n 12
timeout 90 python3 bench/compile_parity.py --device cuda >"$out/parity.txt" 2>&1
echo "[parity] rc=$?"; grep -E '^parity:|Error' "$out/parity.txt"
TORCHINDUCTOR_COORDINATE_DESCENT_TUNING=1 timeout 110 python3 "${loop[@]}" --batch-size 64 \
    >"$out/loop_b64_auto_cdt.txt" 2>&1
echo "[loop_b64_auto_cdt] rc=$? $(grep -hE 'ms/step|^train_loop_speed:' "$out/loop_b64_auto_cdt.txt" | tr '\n' ' ')"
