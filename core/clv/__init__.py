"""Customer lifetime value: transaction summaries, BG/NBD, Gamma-Gamma, sBG and CLV scoring.

Pure numpy/scipy, vectorised over customers. The engine calls :func:`summarize` then :func:`fit_and_score`;
the model modules are usable on their own with parameters named as in the papers.
"""

from core.clv.bgnbd import BgNbdFit, BgNbdParams, fit_bgnbd
from core.clv.gamma_gamma import (
    GammaGammaFit,
    GammaGammaParams,
    IndependenceCheck,
    check_independence,
    fit_gamma_gamma,
)
from core.clv.sbg import SbgFit, SbgParams, fit_sbg, fit_sbg_durations
from core.clv.summary import TransactionSummary, summarize
from core.clv.value import ClvResult, EmpiricalRates, empirical_rates, fit_and_score

__all__ = [
    "BgNbdFit",
    "BgNbdParams",
    "ClvResult",
    "EmpiricalRates",
    "GammaGammaFit",
    "GammaGammaParams",
    "IndependenceCheck",
    "SbgFit",
    "SbgParams",
    "TransactionSummary",
    "check_independence",
    "empirical_rates",
    "fit_and_score",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "fit_sbg",
    "fit_sbg_durations",
    "summarize",
]
