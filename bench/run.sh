#!/usr/bin/env bash
# Runs every benchmark in one go; each prints its figures and the ratio to its anchor.
# The CLV benchmark compares against the `lifetimes` package in a separate venv (.venv-bench),
# created by bench/setup_bench_env.sh when missing.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
[ -x .venv-bench/bin/python ] || bash bench/setup_bench_env.sh || echo "lifetimes comparison will be skipped"
status=0
for bench in clv clv_pareto engine reasons sandbox_hubspot sandbox_salesforce sync_hubspot sync_salesforce; do
  if [ -f "bench/$bench.py" ]; then
    echo "=== bench/$bench.py"
    "$PY" "bench/$bench.py" || status=1
  fi
done
exit $status
