"""Customer lifetime value: transaction summaries, the repeat-purchase models (BG/NBD, MBG/NBD, Pareto/NBD,
BG/BB for discrete opportunities), Gamma-Gamma, sBG, model selection by holdout and CLV scoring.

Pure numpy/scipy, vectorised over customers. The engine calls :func:`summarize` then :func:`fit_and_score`;
the model modules are usable on their own with parameters named as in the papers.
"""

from core.clv.bgbb import BgBbFit, BgBbParams, fit_bgbb
from core.clv.bgnbd import BgNbdFit, BgNbdParams, fit_bgnbd
from core.clv.gamma_gamma import (
    GammaGammaFit,
    GammaGammaParams,
    IndependenceCheck,
    check_independence,
    fit_gamma_gamma,
)
from core.clv.mbgnbd import MbgNbdFit, MbgNbdParams, fit_mbgnbd
from core.clv.paretonbd import ParetoNbdFit, ParetoNbdParams, fit_pareto_nbd
from core.clv.sbg import SbgFit, SbgParams, fit_sbg, fit_sbg_durations
from core.clv.selection import (
    FrequencyRow,
    HoldoutReport,
    ModelScore,
    PurchaseModelFit,
    compare_by_holdout,
    fit_purchase_model,
    score_holdout,
)
from core.clv.summary import TransactionSummary, summarize
from core.clv.value import ClvResult, EmpiricalRates, empirical_rates, fit_and_score

__all__ = [
    "BgBbFit",
    "BgBbParams",
    "BgNbdFit",
    "BgNbdParams",
    "ClvResult",
    "EmpiricalRates",
    "FrequencyRow",
    "GammaGammaFit",
    "GammaGammaParams",
    "HoldoutReport",
    "IndependenceCheck",
    "MbgNbdFit",
    "MbgNbdParams",
    "ModelScore",
    "ParetoNbdFit",
    "ParetoNbdParams",
    "PurchaseModelFit",
    "SbgFit",
    "SbgParams",
    "TransactionSummary",
    "check_independence",
    "compare_by_holdout",
    "empirical_rates",
    "fit_and_score",
    "fit_bgbb",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "fit_mbgnbd",
    "fit_pareto_nbd",
    "fit_purchase_model",
    "fit_sbg",
    "fit_sbg_durations",
    "score_holdout",
    "summarize",
]
