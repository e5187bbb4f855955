#!/usr/bin/env bash
# Creates .venv-bench: our package (editable) next to the `lifetimes` reference implementation, so
# bench/clv.py can time both in one invocation. lifetimes 0.11.3 (its last release, 2020) predates
# NumPy 2 and pandas 2-era deprecations, so its stack is pinned to releases that still have Python 3.11
# wheels and that lifetimes runs on without warnings turning into errors.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
VENV=.venv-bench
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
cat > "$VENV/constraints.txt" <<'PINS'
numpy==1.26.4
scipy==1.11.4
pandas==1.5.3
autograd==1.6.2
dill==0.3.8
lifetimes==0.11.3
PINS
"$VENV/bin/python" -m pip install --quiet -c "$VENV/constraints.txt" -e . lifetimes
"$VENV/bin/python" -c "import lifetimes, numpy, scipy, pandas; print('lifetimes', lifetimes.__version__, 'numpy', numpy.__version__, 'scipy', scipy.__version__, 'pandas', pandas.__version__)"
