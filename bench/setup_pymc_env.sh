#!/usr/bin/env bash
# Creates .venv-pymc with PyMC-Marketing, so bench/clv_pareto.py can time it in the same run as ours and
# lifetimes'. PyMC-Marketing needs Python >= 3.12 (its requires-python); the bench's child process only loads
# the case's .npz there, so our package is not installed. Override the interpreter with PYTHON=/path/to/python3.12.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.12}"
VENV=.venv-pymc
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet pymc-marketing
"$VENV/bin/python" -c "import pymc_marketing, pymc, pytensor; print('pymc-marketing', pymc_marketing.__version__, 'pymc', pymc.__version__, 'pytensor', pytensor.__version__)"
