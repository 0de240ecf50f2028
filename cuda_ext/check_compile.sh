#!/usr/bin/env bash
# Compile the attention kernel with plain nvcc (no torch headers) for each target architecture.
#
#   cuda_ext/check_compile.sh            # sm_80 and sm_90
#   cuda_ext/check_compile.sh 90         # only sm_90
#   PTXAS_INFO=1 cuda_ext/check_compile.sh   # also print registers / spills per kernel
#
# Object files go to a temporary directory that is removed afterwards. Exits non-zero when nvcc is missing
# or any compile fails. NVCC=/path/to/nvcc picks another compiler.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source_file="$here/csrc/attention_fwd.cu"
nvcc="${NVCC:-nvcc}"
archs=("$@")
if [ ${#archs[@]} -eq 0 ]; then archs=(80 90); fi

if ! command -v "$nvcc" >/dev/null 2>&1; then
  echo "check_compile: nvcc not found (set NVCC or put the CUDA toolkit's bin/ on PATH)" >&2
  exit 2
fi

workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT

echo "check_compile: $("$nvcc" --version | grep -o 'release [0-9.]*' || echo 'nvcc')"
# One nvcc per architecture, in parallel: the wall time of the slowest instead of the sum.
pids=()
for arch in "${archs[@]}"; do
  flags=(-c -O3 --use_fast_math -std=c++17 -gencode="arch=compute_${arch},code=sm_${arch}")
  if [ "${PTXAS_INFO:-0}" = "1" ]; then flags+=(-Xptxas -v); fi
  "$nvcc" "${flags[@]}" "$source_file" -o "$workdir/attention_fwd_sm${arch}.o" >"$workdir/sm_${arch}.log" 2>&1 &
  pids+=($!)
done

status=0
for i in "${!archs[@]}"; do
  arch="${archs[$i]}"
  log="$workdir/sm_${arch}.log"
  if wait "${pids[$i]}"; then
    echo "check_compile: sm_${arch} ok"
  else
    echo "check_compile: sm_${arch} FAILED" >&2
    status=1
  fi
  # Warnings and ptxas reports are worth seeing in CI logs either way (errors can run to thousands of lines).
  if [ -s "$log" ]; then
    head -n 60 "$log" | sed 's/^/  /'
    lines=$(wc -l <"$log")
    if [ "$lines" -gt 60 ]; then echo "  ... ($((lines - 60)) more lines)"; fi
  fi
done
exit $status
