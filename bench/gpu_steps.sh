#!/usr/bin/env bash
# Issue 19's device run, one call: versions, then GPT-2 124M (context 1024, bf16, compiled)
# through the whole training loop (bench/train_loop_speed.py) and the bare step
# (bench/train_speed.py) in the variants bench/GPU.md compares, most important first, each
# under its own time limit inside BUDGET seconds; then tests/test_cuda.py. The loop from before
# the change runs from ./base (a copy of that commit's tree) when it is there.
# Logs go to $OUT (or /tmp/gpu_steps); the summary lines are printed last.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor-cache  # later variants reuse compiled kernels
out=${OUT:-/tmp/gpu_steps}
budget=${BUDGET:-430}
mkdir -p "$out/logs"
{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
"cudnn", torch.backends.cudnn.version(), torch.cuda.get_device_name())'
} 2>&1 | tee "$out/versions.txt"

summary="$out/summary.txt"
: >"$summary"
run() {  # run NAME SECONDS COMMAND...: log to logs/NAME.txt, one summary line
    local name=$1 limit=$2 left=$((budget - SECONDS))
    shift 2
    if ((left < 30)); then echo "[$name] skipped: budget spent" | tee -a "$summary"; return; fi
    ((limit > left)) && limit=$left
    local t0=$SECONDS
    timeout "$limit" "$@" >"$out/logs/$name.txt" 2>&1
    local rc=$?
    echo "[$name] rc=$rc $((SECONDS - t0))s $(grep -hE '^(train_speed|train_loop_speed|profile):|ms/step' \
        "$out/logs/$name.txt" | sed -E 's/^.*(warm-up|first step)/\1/' | tr '\n' ' ')" | tee -a "$summary"
}
tps() { local v; v=$(grep -ho 'tokens_per_s=[0-9]*' "$out/logs/$1.txt" 2>/dev/null | cut -d= -f2); echo "${v:-0}"; }

gpt2=(--device cuda --dtype bfloat16 --n-layer 12 --n-head 12 --n-embd 768 --block-size 1024
      --steps 20 --warmup 5)
loop=(bench/train_loop_speed.py --model gpt2 --device cuda --dtype bfloat16 --compile
      --steps 20 --warmup 5)
run loop_b32_fused 120 python3 "${loop[@]}" --batch-size 32
if [ -d base ]; then
    run base_loop_b32_fused 100 bash -c "cd base && PYTHONPATH=\$PWD python3 ${loop[*]} --batch-size 32"
fi
run bare_b32_fused 100 python3 bench/train_speed.py "${gpt2[@]}" --compile --batch-size 32 \
    --profile "$out/profile_bare_b32_fused.txt"
run loop_b32_plain 100 python3 "${loop[@]}" --batch-size 32 --loss plain
best=fused
(( $(tps loop_b32_plain) > $(tps loop_b32_fused) )) && best=plain
echo "loop: the $best loss is faster" | tee -a "$summary"
run tests 150 python3 -m pytest tests/test_cuda.py -q -p no:cacheprovider -o addopts=""
run loop_b64_$best 100 python3 "${loop[@]}" --batch-size 64 --loss $best
run loop_b32_${best}_cudnn 100 python3 "${loop[@]}" --batch-size 32 --loss $best --sdpa cudnn
run bare_b32_plain 90 python3 bench/train_speed.py "${gpt2[@]}" --compile --batch-size 32 \
    --loss plain --profile "$out/profile_bare_b32_plain.txt"
tail -n 4 "$out/logs/tests.txt" >>"$summary" 2>/dev/null
tar -C "$out" -czf "$out/logs.tgz" logs && rm -r "$out/logs"
echo "=== summary"
cat "$summary"
