"""Deal amounts in one currency before anything sums them (issue 19: three 5,000,000-JPY deals added as if
they were dollars moved 244 other contacts' CLV through the population-wide spend model).

Connectors convert with their CRM's own rates and hand over amounts in its company currency; what arrives in
another currency (a CRM without rates for it, a file export) is converted here with the configured table, and
a deal whose currency has no rate is reported by record id and left out of every model — never summed raw.

Pure (no I/O). A deal without a currency code is in the base currency: single-currency CRMs send none.
Without a configured base, the base is what most deals are in; "no code" counts too, so a lone deal in yen among
deals without a code is reported, not taken for the base.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence

from core.quality import QualityReport


def base_currency(codes: Sequence[str | None], configured: str | None) -> str | None:
    """The currency amounts are counted in: the configured one, else the one most deals are in (a connector
    converts to its CRM's company currency, so that is it). None when most deals name no currency: then any
    deal that names one cannot be known to be in the same currency."""
    if configured:
        return configured
    counts = Counter(codes)
    if not counts:
        return None
    # Most deals first; a tie goes to "no code", then by code, so the choice does not depend on the deals' order.
    return min(counts, key=lambda code: (-counts[code], code or ""))


def to_base(ids: Sequence[str], amounts: Sequence[float | None], codes: Sequence[str | None],
            configured: str | None, rates: Mapping[str, float],
            report: QualityReport) -> tuple[list[float | None], list[bool]]:
    """Amounts in the base currency, and which deals to keep.

    ``rates`` give the value of one unit of a currency in ``configured`` (see :class:`core.config.CurrencyConfig`).
    A deal in another currency without a rate is reported as ``deal.currency`` and not kept; a deal without an
    amount is kept whatever its currency (nothing of it is summed).
    """
    normal = [(code.strip().upper() or None) if code else None for code in codes]
    base = base_currency(normal, configured)
    out: list[float | None] = []
    keep: list[bool] = []
    for record_id, amount, code in zip(ids, amounts, normal, strict=True):
        if amount is None or code is None or code == base or (isinstance(amount, float) and math.isnan(amount)):
            out.append(amount)
            keep.append(True)
            continue
        rate = rates.get(code) if configured else None
        if rate is None:
            target = base or "the currency of the deals without a code"
            fix = (f"add currency.rates.{code} (the value of one {code} in {base})" if configured
                   else f"set currency.base (the CRM's company currency) and currency.rates.{code}")
            report.add("deal.currency", record_id,
                       f"{code} has no exchange rate to {target} in the CRM or the configuration — {fix}; the deal "
                       "is excluded", impossible=False, unconverted=True)
            out.append(None)
            keep.append(False)
            continue
        out.append(amount * rate)
        keep.append(True)
    return out, keep
