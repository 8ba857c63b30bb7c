#!/usr/bin/env bash
# The demo-model cross-validation (benchmarks/bench_demo_cv.py, issue #18) on a lent GPU machine, time-boxed
# to fit its lease: pre-training and each fold's fine-tuning run for a time, not for epochs (trtmass train
# --time-budget), the five folds fine-tune and evaluate at once on the one GPU and the machine's cores.
#
#   bash benchmarks/gpu_demo_cv.sh MIAS_DIR OUT_DIR [SECONDS] [bench_demo_cv options that override these]
#
# SECONDS (default 560) is the whole run's wall time; the stages get fixed shares of it.  OUT_DIR receives
# log.txt (the run's output), runs.tar.gz (results JSON and RESULTS.md section, every stage's
# history.json, the GPU's facts) and fold 0's best.pt in 15 MiB parts (fold0-best.pt.part-aa, -ab, ...:
# `cat` them together) so that the fold-0 model can be exported and bundled where the run came back to.
set -u
mias=$1
out=$2
total=${3:-560}
shift $(($# < 3 ? $# : 3))
work=${WORK:-/tmp/demo-cv-gpu}
mkdir -p "$out" "$work"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1; nproc; python3 -c \
    'import torch; print(torch.__version__, torch.cuda.is_available())'; } >"$work/machine.txt" 2>&1
cat "$work/machine.txt"
# Shares of SECONDS: 20 % pre-training, 28 % fine-tuning; the deadlines stop a stage that overruns its share
# (slow start, contention) so that export and evaluation (five folds at once on 3 cores each: about 200 s on
# an H100 machine's 16 cores, 2026-11-27) keep the rest.  Making the phantoms took 40 s there.
pretrain=$((total * 20 / 100)); train=$((total * 28 / 100))
timeout $((total - 20)) python3 -m benchmarks.bench_demo_cv --mias "$mias" --workdir "$work" --parallel-folds 5 \
    --batch-size 16 --pretrain-epochs 400 --epochs 400 \
    --pretrain-seconds $pretrain --train-seconds $train \
    --pretrain-deadline $((pretrain + 90)) --train-deadline $((pretrain + train + 130)) \
    --tag gpu --out "$work/demo_cv.json" --results-md "$work/RESULTS-gpu.md" "$@" >"$work/log.txt" 2>&1
echo "bench_demo_cv exit status $?"
tr '\r' '\n' <"$work/log.txt" | grep -v -E '^(epoch .* step|loading|eval .*: )' | tail -40
cp "$work/log.txt" "$out/log.txt"
(cd "$work" && tar czf "$out/runs.tar.gz" --ignore-failed-read machine.txt log.txt demo_cv*.json RESULTS-gpu.md \
    partial.json pretrain/history.json fold*/history.json 2>/dev/null)
if [ -f "$work/fold0/best.pt" ]; then split -b 15M "$work/fold0/best.pt" "$out/fold0-best.pt.part-"; fi
ls -la "$out"
