"""Realistic, seeded CRM data with a known ground truth: the one generator behind tests, benchmarks, the
sandbox CRMs and the demo.

What is simulated, per contact (all vectorised; no Python loop per contact or per deal in :func:`generate`):

1. **Who they are.** Contacts belong to companies (``numemployees`` log-normal, ``industry``, ``country``) and
   have a job title with a seniority level, and an acquisition source (``hs_analytics_source``). They were
   created uniformly over ``history_years`` before ``as_of``. Some fit fields are left unknown, as in a CRM.
2. **Latent propensity.** ``u = fit + latent_noise * N(0, 1)`` where *fit* adds the effects of seniority,
   company size, industry, source and country (``_SENIORITY_EFFECT`` & co.). The probability of ever becoming
   a customer is ``propensity = sigmoid(base_logit + u)``.
3. **Engagement** is driven by ``u`` plus its own noise and by how long the contact has been known: marketing
   e-mails are sent until an opt-out; opens ~ Binomial(sent, open rate), clicks ~ Binomial(opens, click rate),
   page views and form submissions are Poisson; each "last ... date" is the maximum of that many uniform times
   over the contact's life, so it is consistent with its count.
4. **First purchase.** A contact who will convert (Bernoulli(propensity)) does so ``Gamma`` days after being
   created (mean ``mean_conversion_delay_days``); it is a customer in the data only if that is before
   ``as_of``. Converters whose purchase falls after ``as_of`` but whose deal is already under way have it
   open.
5. **Repeat purchases** follow BG/NBD (Fader, Hardie & Lee 2005) from the first purchase on, in weeks:
   ``lambda ~ Gamma(r, alpha)``, ``p ~ Beta(a, b)``; while alive the customer buys as a Poisson process of rate
   lambda and drops out with probability p right after each *repeat* purchase (as in the model, the first
   purchase cannot be followed by an immediate dropout). ``alpha`` is rescaled so that customers make
   ``deals_per_customer`` purchases on average (see :func:`calibrated_params`).
6. **Spend** per purchase is Gamma-Gamma (Fader & Hardie 2013): ``nu ~ Gamma(q, gamma)`` per customer, each
   amount ~ ``Gamma(p, nu)``. Won deals are exactly the purchases (``closed_at`` = purchase time).
7. **Lost and open deals** are added around them: lost deals for prospects (more for high propensity) and
   customers (failed expansions); open deals for converters whose deal is in progress, some other
   high-propensity prospects, and alive customers (their next purchase being negotiated).

Ground truth (:class:`GroundTruth`) keeps the latent values and a stage per contact, by these rules, first
match wins (times in weeks, ``1/lambda`` is the customer's expected gap between purchases):

==================  ==============================================================================
``churned``         customer (``converted``) who dropped out before ``as_of`` (``not alive_at_as_of``)
``at_risk``         alive customer with ``as_of - last purchase > 2 / lambda``
``repeat_customer`` alive customer, not at risk, with ``n_purchases >= 2``
``customer``        alive customer, not at risk, with ``n_purchases == 1``
``opportunity``     non-customer with an open deal
``lead``            non-customer with a form submission (``num_conversion_events >= 1``), or
                    ``hs_email_click >= 2``, or ``hs_analytics_num_page_views >= 15``
``subscriber``      everyone else
==================  ==============================================================================

The truth is stated with deals attributed to their primary (first) contact; a deal's second contact, when
it has one, is a colleague at the same company and does not own the purchase.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import special

from core.columns import ContactColumns, DealColumns, FloatArray, IntArray, ObjArray, StatusCode
from core.models import Contact, Deal, DealStatus, FieldType, PropertyValue

BoolArray = npt.NDArray[np.bool_]

DAY: Final = 86_400.0
WEEK: Final = 7 * DAY
YEAR: Final = 365.25 * DAY

PROPERTY_TYPES: Final[dict[str, FieldType]] = {
    "firstname": FieldType.STRING,
    "lastname": FieldType.STRING,
    "company": FieldType.STRING,
    "jobtitle": FieldType.STRING,
    "industry": FieldType.STRING,
    "country": FieldType.STRING,
    "numemployees": FieldType.NUMBER,
    "hs_analytics_source": FieldType.STRING,
    "hs_email_open": FieldType.NUMBER,
    "hs_email_click": FieldType.NUMBER,
    "hs_analytics_num_page_views": FieldType.NUMBER,
    "num_conversion_events": FieldType.NUMBER,
    "hs_email_last_open_date": FieldType.DATETIME,
    "hs_analytics_last_visit_timestamp": FieldType.DATETIME,
    "recent_conversion_date": FieldType.DATETIME,
    "hs_email_optout": FieldType.BOOL,
    "unsubscribed_at": FieldType.DATETIME,
    "hs_email_bounce": FieldType.NUMBER,
    "hs_lead_status": FieldType.STRING,
    "referrals": FieldType.NUMBER,
    "contract_end_date": FieldType.DATETIME,
    "lifecyclestage": FieldType.STRING,
}
"""Contact properties the generator produces (HubSpot internal names) and their types."""

DEAL_PROPERTY_TYPES: Final[dict[str, FieldType]] = {
    "dealname": FieldType.STRING,
    "pipeline": FieldType.STRING,
    "dealstage": FieldType.STRING,
    "deal_currency_code": FieldType.STRING,
    "meddic_metrics": FieldType.STRING,
    "meddic_economic_buyer": FieldType.STRING,
    "meddic_decision_criteria": FieldType.STRING,
    "meddic_decision_process": FieldType.STRING,
    "meddic_identify_pain": FieldType.STRING,
    "meddic_champion": FieldType.STRING,
}
"""Deal properties the generator produces (HubSpot internal names) and their types."""

TRUE_STAGES: Final = ("subscriber", "lead", "opportunity", "customer", "repeat_customer", "at_risk", "churned")
"""The labels of :attr:`GroundTruth.true_stage`, in funnel order."""

OPEN_DEAL_STAGES: Final = (
    "appointmentscheduled", "qualifiedtobuy", "presentationscheduled", "decisionmakerboughtin", "contractsent",
)
"""HubSpot's default-pipeline open stages, earliest first; closed deals are ``closedwon``/``closedlost``."""

_LEAD_FORMS = 1
_LEAD_CLICKS = 2
_LEAD_PAGE_VIEWS = 15
_AT_RISK_GAPS = 2.0


@dataclass(frozen=True)
class GeneratorParams:
    """Every knob of the simulation, with defaults that give a B2B-looking CRM.

    BG/NBD ``r``, ``alpha`` (per week), ``a``, ``b`` default to the CDNOW estimates of Fader, Hardie & Lee
    (2005); :func:`generate` rescales ``alpha`` to reach its ``deals_per_customer`` and records the values
    used in :attr:`GroundTruth.params`. Gamma-Gamma ``p``, ``q`` are the CDNOW estimates of Fader & Hardie
    (2013) and ``gamma`` is theirs (15.44) times ~113, so the average purchase is about $4,000 instead of $35.
    """

    history_years: float = 3.0
    """Contacts are created uniformly over this many years before ``as_of``."""
    contacts_per_company: float = 2.5
    base_logit: float = -1.15
    """Intercept of the propensity: with the fit effects below, about 35% of contacts would ever convert."""
    latent_noise: float = 1.7
    """Standard deviation of the part of the propensity no CRM field shows (it shows through engagement)."""
    engagement_noise: float = 0.4
    """Standard deviation of each engagement channel's own noise around the latent propensity."""
    mean_conversion_delay_days: float = 90.0
    """Mean time from creation to first purchase of a contact who converts (Gamma, shape below)."""
    conversion_delay_shape: float = 1.5
    first_cycle_days: float = 45.0
    """Median length of the first deal (created → won), log-normal."""
    cycle_days: float = 25.0
    """Median length of later deals (created → closed), log-normal."""
    r: float = 0.243
    """BG/NBD: shape of the Gamma distribution of purchase rates lambda (per week)."""
    alpha: float = 4.414
    """BG/NBD: rate (scale⁻¹) of that Gamma, in weeks; mean lambda = r / alpha. Rescaled by generate()."""
    a: float = 0.793
    """BG/NBD: dropout p ~ Beta(a, b) after each repeat purchase."""
    b: float = 2.426
    p: float = 6.25
    """Gamma-Gamma: shape of each purchase's amount, Gamma(p, rate nu)."""
    q: float = 3.74
    """Gamma-Gamma: nu ~ Gamma(shape q, rate gamma) per customer; mean spend p * gamma / (q - 1)."""
    gamma: float = 1750.0
    lost_per_prospect: float = 2.2
    """Mean number of lost deals of a prospect with propensity 1, over a year of life (fewer for less)."""
    lost_per_purchase: float = 1.8
    """Mean lost deals of a customer per purchase made (deals it considered and did not take)."""
    open_prospect_share: float = 0.12
    """Share of non-converting prospects, times their propensity, with an open deal (to be lost later)."""
    open_window_weeks: float = 4.0
    """An alive customer has an open deal with probability 1 - exp(-lambda * this)."""
    second_contact_share: float = 0.15
    """Share of deals that also name a colleague of the buyer (same company), when there is one."""
    subscription_share: float = 0.4
    """Share of customers on annual contracts, who get ``contract_end_date`` = last purchase + 1 year."""
    emails_per_week: float = 0.7
    meddic_share: float = 0.6
    """Share of open deals where sales filled in MEDDIC at all."""
    currency: str = "USD"


@dataclass
class GroundTruth:
    """What the simulation knows about each contact (arrays aligned with the contact rows).

    Times are epoch seconds (NaN when there is none); ``lam`` is per week. BG/NBD and spend values are NaN
    for contacts that never bought. See the module docstring for the ``true_stage`` rules.
    """

    propensity: FloatArray
    """P(ever converts) = sigmoid(base_logit + latent)."""
    latent: FloatArray
    converted: BoolArray
    """Made a first purchase before ``as_of``."""
    first_purchase_at: FloatArray
    last_purchase_at: FloatArray
    n_purchases: IntArray
    """Won deals = purchases, the first included."""
    lam: FloatArray
    p_drop: FloatArray
    nu: FloatArray
    """Gamma-Gamma rate: expected spend per purchase is ``params.p / nu``."""
    alive_at_as_of: BoolArray
    dropped_at: FloatArray
    """Time of the repeat purchase after which the customer dropped out (NaN while alive)."""
    open_deals: IntArray
    lost_deals: IntArray
    true_stage: ObjArray
    params: GeneratorParams
    """The parameters used, with ``alpha`` as rescaled for ``deals_per_customer``."""


@dataclass
class GeneratedData:
    """Contacts and deals as engine columns, the ground truth, and record views for connectors/sandboxes."""

    contacts: ContactColumns
    deals: DealColumns
    truth: GroundTruth
    as_of: datetime
    deal_second_contact: IntArray
    """Per deal, the row of a colleague also associated with it, or -1."""

    def contact_records(self) -> list[Contact]:
        """The contacts as :class:`core.models.Contact` records (ids as strings, unknown properties left out).

        Builds one pydantic object per contact: meant for small and medium sizes (sandboxes, tests).
        """
        cols = self.contacts
        values = {name: cols.properties[name].tolist() for name in PROPERTY_TYPES}
        # Last activity, not contract_end_date (which lies ahead for customers under contract).
        times = ["hs_email_last_open_date", "hs_analytics_last_visit_timestamp", "recent_conversion_date",
                 "unsubscribed_at"]
        ids: list[str] = cols.ids.tolist()
        created: list[float] = cols.created_at.tolist()
        first: list[str] = values["firstname"]
        last: list[str] = values["lastname"]
        records = []
        for i, contact_id in enumerate(ids):
            props = {name: _record_value(column[i], PROPERTY_TYPES[name]) for name, column in values.items()}
            props = {k: v for k, v in props.items() if v is not None}
            seen = [values[name][i] for name in times if not math.isnan(values[name][i])]
            records.append(
                Contact(
                    id=contact_id,
                    email=f"{_slug(first[i])}.{_slug(last[i])}.{contact_id}@{_EMAIL_DOMAINS[i % 3]}",
                    created_at=_dt(created[i]),
                    updated_at=_dt(max([created[i], *seen])),
                    properties=props,
                )
            )
        return records

    def deal_records(self) -> list[Deal]:
        """The deals as :class:`core.models.Deal` records, in column order.

        ``contact_ids`` is the buyer (the column's ``contact_index``) and, for some deals, a colleague.
        """
        cols = self.deals
        contact_ids: list[str] = self.contacts.ids.tolist()
        values = {name: cols.properties[name].tolist() for name in DEAL_PROPERTY_TYPES}
        owner: list[int] = cols.contact_index.tolist()
        second: list[int] = self.deal_second_contact.tolist()
        amount: list[float] = cols.amount.tolist()
        created: list[float] = cols.created_at.tolist()
        closed: list[float] = cols.closed_at.tolist()
        status = [_STATUS[s] for s in cols.status.tolist()]
        records = []
        for i, deal_id in enumerate(cols.ids.tolist()):
            props = {name: _record_value(column[i], DEAL_PROPERTY_TYPES[name]) for name, column in values.items()}
            props = {k: v for k, v in props.items() if v is not None}
            people = (contact_ids[owner[i]],) if second[i] < 0 else (contact_ids[owner[i]], contact_ids[second[i]])
            closed_at = None if math.isnan(closed[i]) else _dt(closed[i])
            records.append(
                Deal(
                    id=str(deal_id),
                    amount=None if math.isnan(amount[i]) else amount[i],
                    currency=values["deal_currency_code"][i],
                    pipeline=values["pipeline"][i],
                    stage=values["dealstage"][i],
                    status=status[i],
                    created_at=_dt(created[i]),
                    closed_at=closed_at,
                    updated_at=closed_at or _dt(created[i]),
                    contact_ids=people,
                    properties=props,
                )
            )
        return records


def generate(
    n_contacts: int,
    *,
    seed: int = 0,
    as_of: datetime = datetime(2026, 1, 1, tzinfo=UTC),
    deals_per_customer: float = 3.0,
    params: GeneratorParams | None = None,
) -> GeneratedData:
    """Simulate ``n_contacts`` contacts and their deals as of ``as_of``; same seed, same data.

    ``deals_per_customer`` is the mean number of won deals (purchases, the first included) per customer;
    it must be above 1, and is met within a few percent up to about 10 (beyond, with the CDNOW ``a`` < 1,
    the heavy tail of purchases before dropout makes sample means converge slowly). ``params`` overrides the
    simulation's defaults (:class:`GeneratorParams`). With the defaults about 32% of contacts are customers
    and there are ~3 deals per contact (a third of the closed ones won).
    """
    if n_contacts < 0:
        raise ValueError(f"n_contacts must be ≥ 0, got {n_contacts}")
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware (e.g. datetime(2026, 1, 1, tzinfo=UTC))")
    used = calibrated_params(params or GeneratorParams(), deals_per_customer)
    # One independent stream per part, so changing how deals are drawn does not reshuffle the contacts.
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(6)]
    now = math.floor(as_of.timestamp())
    people = _people(n_contacts, now, used, streams[0])
    engagement = _engagement(people, now, used, streams[1])
    buying = _purchases(people, now, used, streams[2])
    deals = _deals(people, buying, now, used, streams[3])
    status = _status_fields(people, engagement, buying, deals, now, used, streams[4])
    columns = {**people.props, **engagement, **status.props}
    contacts = ContactColumns(
        ids=_id_strings(n_contacts),
        created_at=people.created,
        properties={name: columns[name] for name in PROPERTY_TYPES},
    )
    truth = GroundTruth(
        propensity=people.propensity,
        latent=people.latent,
        converted=buying.converted,
        first_purchase_at=buying.first,
        last_purchase_at=buying.last,
        n_purchases=buying.n_purchases,
        lam=buying.lam,
        p_drop=buying.p_drop,
        nu=buying.nu,
        alive_at_as_of=buying.alive,
        dropped_at=buying.dropped_at,
        open_deals=deals.open_per_contact,
        lost_deals=deals.lost_per_contact,
        true_stage=status.true_stage,
        params=used,
    )
    second = _second_contacts(people, deals.columns, used, streams[5])
    return GeneratedData(contacts=contacts, deals=deals.columns, truth=truth, as_of=as_of,
                         deal_second_contact=second)


# --- BG/NBD calibration --------------------------------------------------------------------------------


def expected_repeat_purchases(t: npt.ArrayLike, r: float, alpha: float, a: float, b: float) -> FloatArray:
    """BG/NBD E[X(t)], the expected repeat purchases in (0, t] (Fader, Hardie & Lee 2005, eq. 9)."""
    ta = np.asarray(t, dtype=np.float64)
    z = ta / (alpha + ta)
    bracket = 1.0 - (alpha / (alpha + ta)) ** r * special.hyp2f1(r, b, a + b - 1.0, z)
    return np.asarray((a + b - 1.0) / (a - 1.0) * bracket, dtype=np.float64)


def calibrated_params(params: GeneratorParams, deals_per_customer: float) -> GeneratorParams:
    """``params`` with ``alpha`` scaled so the expected purchases per customer are ``deals_per_customer``.

    The expectation is over the distribution of customers' observation times implied by ``params`` (contact
    ages uniform over the history, minus the conversion delay), not over one sample, so the result does not
    depend on the seed or on ``n_contacts``.
    """
    if not deals_per_customer > 1.0:
        raise ValueError(f"deals_per_customer must be > 1 (the first purchase counts), got {deals_per_customer}")
    alpha = _calibrated_alpha(params, float(deals_per_customer))
    return replace(params, alpha=alpha)


@lru_cache(maxsize=64)
def _calibrated_alpha(params: GeneratorParams, deals_per_customer: float) -> float:
    weeks, weight = _observation_weeks(params)
    # The closed form divides by a - 1; at a = 1 exactly use a neighbour (the function is continuous there).
    a = params.a if abs(params.a - 1.0) > 1e-6 else 1.0 + 1e-6
    target = deals_per_customer - 1.0

    def gap(log_scale: float) -> float:
        repeats = expected_repeat_purchases(weeks, params.r, params.alpha * math.exp(log_scale), a, params.b)
        return float(np.dot(weight, repeats)) - target

    # E[X] falls as alpha grows: walk outwards from the given alpha until the target is bracketed.
    low, high = -0.5, 0.5
    for _ in range(12):
        low_gap, high_gap = gap(low), gap(high)
        if low_gap > 0 > high_gap:
            break
        low, high = (low - 1.0, high) if low_gap <= 0 else (low, high + 1.0)
    else:
        raise ValueError(
            f"deals_per_customer={deals_per_customer} cannot be reached with r={params.r}, a={params.a}, "
            f"b={params.b} over {params.history_years} years; lower it or change the BG/NBD parameters"
        )
    for _ in range(60):  # bisection on log(alpha): 60 halvings is far below float precision
        mid = 0.5 * (low + high)
        low, high = (mid, high) if gap(mid) > 0 else (low, mid)
    return params.alpha * math.exp(0.5 * (low + high))


def _observation_weeks(params: GeneratorParams) -> tuple[FloatArray, FloatArray]:
    """Distribution of (as_of - first purchase) in weeks among customers, on a one-day grid."""
    grid = (np.arange(1000) + 0.5) / 1000
    age_days = grid * params.history_years * 365.25
    delay_days = special.gammaincinv(params.conversion_delay_shape, grid) * (
        params.mean_conversion_delay_days / params.conversion_delay_shape
    )
    observed = (age_days[:, None] - delay_days[None, :]).ravel()
    observed = observed[observed >= 0]
    counts = np.bincount(np.floor(observed).astype(np.int64))
    days = np.nonzero(counts)[0]
    weeks = np.asarray((days + 0.5) / 7.0, dtype=np.float64)
    return weeks, np.asarray(counts[days] / counts.sum(), dtype=np.float64)


# --- contacts ------------------------------------------------------------------------------------------

_SENIORITY_TITLES: Final = (
    ("Student", "Intern", "Graduate Student"),
    ("Sales Rep", "Engineer", "Software Engineer", "Marketing Specialist", "Analyst", "Account Executive",
     "Consultant", "Designer", "Customer Success Associate"),
    ("Marketing Manager", "Sales Manager", "Product Manager", "Engineering Manager", "Operations Manager",
     "Account Manager"),
    ("Head of Marketing", "Head of Sales", "Director of Operations", "IT Director", "Head of Growth",
     "Director of Customer Success"),
    ("VP Sales", "VP Marketing", "VP Engineering", "VP Operations"),
    ("CEO", "CTO", "CFO", "COO", "Founder", "Owner"),
)
_SENIORITY_SHARE: Final = (0.06, 0.38, 0.26, 0.14, 0.08, 0.08)
_SENIORITY_EFFECT: Final = (-1.8, -0.5, 0.0, 0.5, 0.8, 1.0)

_INDUSTRIES: Final = (
    ("Software", 0.16, 0.5), ("Financial Services", 0.10, 0.3), ("Healthcare", 0.09, 0.0),
    ("Manufacturing", 0.11, 0.1), ("Retail", 0.10, -0.3), ("Education", 0.07, -0.7),
    ("Marketing and Advertising", 0.08, 0.2), ("Consulting", 0.08, 0.1), ("Non-profit", 0.05, -0.8),
    ("Real Estate", 0.05, -0.3), ("Telecommunications", 0.05, 0.2), ("Government", 0.06, -0.6),
)
_COUNTRIES: Final = (
    ("US", 0.38, 0.1), ("GB", 0.10, 0.1), ("DE", 0.08, 0.1), ("FR", 0.06, 0.0), ("CA", 0.06, 0.1),
    ("AU", 0.04, 0.1), ("NL", 0.04, 0.0), ("IN", 0.07, -0.3), ("BR", 0.04, -0.3), ("ES", 0.03, 0.0),
    ("IT", 0.03, 0.0), ("SE", 0.02, 0.1), ("JP", 0.02, -0.1), ("SG", 0.03, 0.0),
)
_SOURCES: Final = (
    ("ORGANIC_SEARCH", 0.28, 0.1), ("PAID_SEARCH", 0.15, 0.0), ("EMAIL_MARKETING", 0.10, 0.2),
    ("SOCIAL_MEDIA", 0.14, -0.5), ("REFERRALS", 0.10, 0.9), ("DIRECT_TRAFFIC", 0.13, 0.2), ("OFFLINE", 0.10, 0.4),
)
_MEDIAN_EMPLOYEES = 50.0
_SIZE_EFFECT = 0.45  # per factor 10 of employees, saturating (tanh) so giant firms are not sure buyers
_MISSING = {"jobtitle": 0.08, "industry": 0.12, "country": 0.05, "numemployees": 0.15}

_FIRST_NAMES: Final = (
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
    "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Carlos", "Karen",
    "Daniel", "Lisa", "Matthew", "Nancy", "Anthony", "Sandra", "Mark", "Ashley", "Paul", "Emily", "Steven",
    "Olivia", "Andrew", "Sofia", "Lukas", "Emma", "Hannah", "Noah", "Lea", "Mateo", "Aisha", "Arjun", "Priya",
    "Wei", "Yuki", "Hiro", "Amara", "Kwame", "Ingrid", "Lars", "Chloe", "Hugo", "Giulia", "Marco", "Ana",
    "Joao", "Fatima", "Omar", "Nina", "Elena",
)
_LAST_NAMES: Final = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee",
    "Thompson", "White", "Harris", "Clark", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Muller",
    "Schmidt", "Schneider", "Fischer", "Dubois", "Laurent", "Rossi", "Bianchi", "Silva", "Santos", "Patel",
    "Sharma", "Singh", "Chen", "Wang", "Tanaka", "Sato", "Kim", "Nguyen", "Okafor", "Mensah", "Johansson",
    "Larsen", "Novak", "Kowalski", "Murphy", "OBrien", "Costa", "Ferreira", "Cohen",
)
_COMPANY_WORDS: Final = (
    ("Blue", "North", "Bright", "Swift", "Silver", "Green", "Red", "Iron", "Clear", "Summit", "Pioneer",
     "Atlas", "Nova", "Vertex", "Harbor", "Maple", "Cedar", "Granite", "Lumen", "Orbit", "Quantum", "Crest",
     "Evergreen", "Sterling"),
    ("Data", "Logic", "Works", "Labs", "Systems", "Dynamics", "Analytics", "Solutions", "Partners", "Health",
     "Foods", "Motors", "Energy", "Capital", "Media", "Cloud", "Networks", "Robotics", "Retail", "Learning"),
    ("Inc", "LLC", "Ltd", "GmbH", "Group", "Co", "SA", "BV"),
)
_EMAIL_DOMAINS: Final = ("example.com", "example.org", "example.net")


@dataclass
class _People:
    created: FloatArray
    company: IntArray
    seniority: IntArray
    fit: FloatArray
    latent: FloatArray
    propensity: FloatArray
    props: dict[str, FloatArray | ObjArray]


def _people(n: int, now: float, params: GeneratorParams, rng: np.random.Generator) -> _People:
    # Sorted creation times, so that ids (assigned in row order) grow with time as a CRM's do.
    created = np.sort(np.floor(now - rng.random(n) * params.history_years * YEAR))
    n_companies = max(1, round(n / params.contacts_per_company))
    employees = np.clip(np.round(np.exp(rng.normal(math.log(_MEDIAN_EMPLOYEES), 1.6, n_companies))), 1, 500_000)
    industry = rng.choice(len(_INDUSTRIES), n_companies, p=_shares(_INDUSTRIES))
    country = rng.choice(len(_COUNTRIES), n_companies, p=_shares(_COUNTRIES))
    # Larger companies have more people in the CRM.
    weight = employees**0.3
    company = rng.choice(n_companies, n, p=weight / weight.sum()).astype(np.int64)
    seniority = rng.choice(len(_SENIORITY_SHARE), n, p=np.asarray(_SENIORITY_SHARE) / sum(_SENIORITY_SHARE))
    title_pick = rng.random(n)
    source = rng.choice(len(_SOURCES), n, p=_shares(_SOURCES))

    fit = (
        np.asarray(_SENIORITY_EFFECT)[seniority]
        + _SIZE_EFFECT * np.tanh(np.log10(employees[company] / _MEDIAN_EMPLOYEES))
        + _effects(_INDUSTRIES)[industry[company]]
        + _effects(_COUNTRIES)[country[company]]
        + _effects(_SOURCES)[source]
    )
    latent = fit + params.latent_noise * rng.standard_normal(n)
    propensity = special.expit(params.base_logit + latent)

    titles = np.empty(n, dtype=object)
    for level, names in enumerate(_SENIORITY_TITLES):
        rows = np.nonzero(seniority == level)[0]
        titles[rows] = _pool(names)[(title_pick[rows] * len(names)).astype(np.int64)]
    props: dict[str, FloatArray | ObjArray] = {
        "firstname": _pool(_FIRST_NAMES)[rng.integers(0, len(_FIRST_NAMES), n)],
        "lastname": _pool(_LAST_NAMES)[rng.integers(0, len(_LAST_NAMES), n)],
        "company": _company_names(n_companies, rng)[company],
        "jobtitle": titles,
        "industry": _pool([x[0] for x in _INDUSTRIES])[industry[company]],
        "country": _pool([x[0] for x in _COUNTRIES])[country[company]],
        "numemployees": employees[company].astype(np.float64),
        "hs_analytics_source": _pool([x[0] for x in _SOURCES])[source],
    }
    # Fields people leave blank: the truth used the real value, the CRM does not show it.
    for name, share in _MISSING.items():
        blank = rng.random(n) < share
        column = props[name]
        if column.dtype == object:
            column[blank] = None
        else:
            column[blank] = np.nan
    return _People(created=created, company=company, seniority=seniority, fit=fit, latent=latent,
                   propensity=propensity, props=props)


def _company_names(n: int, rng: np.random.Generator) -> ObjArray:
    """Unique company names: word combinations in shuffled order, numbered once they run out."""
    first, second, suffix = _COMPANY_WORDS
    combos = [f"{a} {b} {c}" for c in suffix for b in second for a in first]
    size = len(combos)
    order = rng.permutation(max(n, size))[:n]
    return _pool([combos[k] if k < size else f"{combos[k % size]} {k // size + 1}" for k in order.tolist()])


# --- engagement ----------------------------------------------------------------------------------------


def _engagement(people: _People, now: float, params: GeneratorParams,
                rng: np.random.Generator) -> dict[str, FloatArray | ObjArray]:
    n = len(people.created)
    u = people.latent
    created = people.created
    noise = params.engagement_noise

    # Disengaged people opt out more; after opting out they get no more marketing e-mail.
    optout = rng.random(n) < special.expit(-2.0 - 0.6 * u)
    unsubscribed = np.where(optout, np.floor(created + rng.random(n) * (now - created)), np.nan)
    mail_end = np.where(optout, unsubscribed, now)
    bounced = rng.random(n) < 0.02  # a hard bounce: nothing was ever delivered
    sent = rng.poisson(params.emails_per_week * (mail_end - created) / WEEK)
    sent[bounced] = 0
    opens = rng.binomial(sent, special.expit(-1.2 + 0.4 * u + noise * rng.standard_normal(n)))
    clicks = rng.binomial(opens, special.expit(-2.0 + 0.3 * u + noise * rng.standard_normal(n)))
    weeks_known = (now - created) / WEEK
    views = rng.poisson(0.15 * weeks_known * np.exp(0.45 * u + noise * rng.standard_normal(n)))
    forms = rng.poisson(0.2 + 0.3 * weeks_known / 52 * np.exp(0.4 * u + noise * rng.standard_normal(n)))
    return {
        "hs_email_open": opens.astype(np.float64),
        "hs_email_click": clicks.astype(np.float64),
        "hs_analytics_num_page_views": views.astype(np.float64),
        "num_conversion_events": forms.astype(np.float64),
        "hs_email_last_open_date": _last_time(rng, created, mail_end, opens),
        "hs_analytics_last_visit_timestamp": _last_time(rng, created, np.full(n, now), views),
        "recent_conversion_date": _last_time(rng, created, np.full(n, now), forms),
        "hs_email_optout": optout.astype(np.float64),
        "unsubscribed_at": unsubscribed,
        "hs_email_bounce": np.where(bounced, 1.0 + (rng.random(n) < 0.3), 0.0),
    }


def _last_time(rng: np.random.Generator, start: FloatArray, end: FloatArray, count: IntArray) -> FloatArray:
    """The latest of ``count`` uniform times in [start, end] (NaN when count is 0): max of n uniforms ~ U^(1/n)."""
    with np.errstate(divide="ignore"):
        share = rng.random(len(start)) ** (1.0 / count)
    return np.where(count > 0, np.floor(start + share * (end - start)), np.nan)


# --- purchases (first purchase, BG/NBD repeats, Gamma-Gamma spend) ------------------------------------


@dataclass
class _Buying:
    converted: BoolArray
    will_convert: BoolArray
    first: FloatArray
    """First purchase time; for non-converters who will convert later, the future time (see ``future``)."""
    future: FloatArray
    first_cycle: FloatArray
    last: FloatArray
    n_purchases: IntArray
    lam: FloatArray
    p_drop: FloatArray
    nu: FloatArray
    alive: BoolArray
    dropped_at: FloatArray
    purchase_owner: IntArray
    purchase_time: FloatArray
    purchase_amount: FloatArray
    purchase_rank: IntArray


def _purchases(people: _People, now: float, params: GeneratorParams, rng: np.random.Generator) -> _Buying:
    n = len(people.created)
    will_convert = rng.random(n) < people.propensity
    scale = params.mean_conversion_delay_days / params.conversion_delay_shape
    delay = rng.gamma(params.conversion_delay_shape, scale, n) * DAY
    at = np.floor(people.created + delay)
    converted = will_convert & (at <= now)
    first_cycle = np.exp(rng.normal(math.log(params.first_cycle_days), 0.5, n)) * DAY

    # BG/NBD from the first purchase on, in weeks; drawn for everyone so a contact's draws do not depend
    # on whether others converted, then masked.
    lam = rng.gamma(params.r, 1.0 / params.alpha, n)
    p_drop = rng.beta(params.a, params.b, n)
    span = np.where(converted, (now - at) / WEEK, 0.0)
    events = rng.poisson(lam * span)
    dropout_after = rng.geometric(np.clip(p_drop, 1e-12, 1.0))
    repeats = np.where(converted, np.minimum(events, dropout_after), 0).astype(np.int64)
    alive = converted & (events < dropout_after)

    # Times of the first `repeats` of `events` uniform points on (0, span]: the k-th order statistic is
    # 1 - prod_{j<=k} V_j^(1/(events-j+1)), so only the purchases actually made are drawn.
    owner = np.repeat(np.arange(n), repeats)
    starts = np.cumsum(repeats) - repeats
    rank = np.arange(len(owner)) - starts[owner]
    logs = np.log(rng.random(len(owner))) / (events[owner] - rank)
    running = np.cumsum(logs)
    before = np.concatenate(([0.0], running))[starts[owner]]
    share = -np.expm1(running - before)
    repeat_time = np.minimum(np.floor(at[owner] + share * span[owner] * WEEK), now)

    n_purchases = np.where(converted, 1 + repeats, 0)
    last = np.where(converted, at, np.nan)
    has_repeat = repeats > 0
    last[has_repeat] = repeat_time[starts[has_repeat] + repeats[has_repeat] - 1]
    dropped_at = np.where(converted & ~alive, last, np.nan)

    nu = rng.gamma(params.q, 1.0 / params.gamma, n)
    buyers = np.nonzero(converted)[0]
    purchase_owner = np.concatenate((buyers, owner))
    purchase_time = np.concatenate((at[buyers], repeat_time))
    purchase_rank = np.concatenate((np.zeros(len(buyers), dtype=np.int64), rank + 1))
    amount = _amounts(rng, params.p, nu[purchase_owner])

    def known(values: FloatArray) -> FloatArray:
        return np.where(converted, values, np.nan)

    return _Buying(
        converted=converted, will_convert=will_convert, first=known(at), future=np.where(converted, np.nan, at),
        first_cycle=first_cycle, last=last, n_purchases=n_purchases.astype(np.int64), lam=known(lam),
        p_drop=known(p_drop), nu=known(nu), alive=alive, dropped_at=dropped_at,
        purchase_owner=purchase_owner, purchase_time=purchase_time, purchase_amount=amount,
        purchase_rank=purchase_rank,
    )


def _amounts(rng: np.random.Generator, p: float, nu: FloatArray) -> FloatArray:
    """Gamma(p, rate nu) spends in cents, at least one cent (a won deal always has a positive amount)."""
    return np.maximum(np.round(rng.gamma(p, 1.0 / nu), 2), 0.01)


# --- deals ---------------------------------------------------------------------------------------------

_PRODUCTS: Final = ("Starter plan", "Professional plan", "Enterprise plan", "Onboarding services",
                    "Analytics add-on", "Support add-on", "Training package", "Consulting hours")
_DEAL_KINDS: Final = ("New business", "Renewal", "Expansion", "Upsell")
_MEDDIC: Final = {
    "meddic_metrics": ("Reduce churn by 10%", "Save 20 hours a week", "Grow pipeline 25%",
                       "Halve reporting time", "Lower CAC by 15%"),
    "meddic_economic_buyer": ("CFO", "CEO", "VP Sales", "Head of Marketing", "COO"),
    "meddic_decision_criteria": ("Price and ROI", "CRM integration", "Security review", "Ease of use",
                                 "Vendor support"),
    "meddic_decision_process": ("Pilot then annual contract", "Procurement review", "Board approval",
                                "Team trial and sign-off"),
    "meddic_identify_pain": ("Manual reporting", "Low lead conversion", "High churn", "Disconnected tools",
                             "No pipeline visibility"),
    "meddic_champion": ("Marketing Manager", "Sales Manager", "Head of Growth", "RevOps Lead",
                        "Product Manager"),
}


@dataclass
class _Deals:
    columns: DealColumns
    open_per_contact: IntArray
    lost_per_contact: IntArray


def _deals(people: _People, buying: _Buying, now: float, params: GeneratorParams,
           rng: np.random.Generator) -> _Deals:
    n = len(people.created)
    created = people.created
    nu_all = np.where(buying.converted, buying.nu, rng.gamma(params.q, 1.0 / params.gamma, n))

    # Won: one per purchase; the first took the first sales cycle, later ones a usual cycle.
    won_owner = buying.purchase_owner
    cycle = np.where(buying.purchase_rank == 0, buying.first_cycle[won_owner], _cycles(rng, params, len(won_owner)))
    won_created = np.maximum(created[won_owner], np.floor(buying.purchase_time - cycle))

    # Lost: prospects by propensity and months known; customers in proportion to their purchases.
    years_known = (now - created) / YEAR
    lost_mean = np.where(
        buying.converted,
        params.lost_per_purchase * buying.n_purchases,
        params.lost_per_prospect * people.propensity * np.minimum(years_known, 1.0),
    )
    lost_count = rng.poisson(lost_mean)
    lost_owner = np.repeat(np.arange(n), lost_count)
    lost_closed = np.floor(created[lost_owner] + rng.random(len(lost_owner)) * (now - created[lost_owner]))
    lost_created = np.maximum(created[lost_owner], np.floor(lost_closed - _cycles(rng, params, len(lost_owner))))

    # Open: converters whose winning deal is under way, other prospects by propensity, alive customers.
    future = buying.will_convert & ~buying.converted
    in_progress = future & (buying.future - buying.first_cycle <= now)
    other = ~buying.will_convert & (rng.random(n) < params.open_prospect_share * people.propensity)
    lam = np.nan_to_num(buying.lam)
    customer_next = buying.alive & (rng.random(n) < -np.expm1(-lam * params.open_window_weeks))
    has_open = in_progress | other | customer_next
    open_owner = np.nonzero(has_open)[0]
    recent = np.floor(now - rng.random(n) * _cycles(rng, params, n))
    open_from = np.where(in_progress, np.floor(buying.future - buying.first_cycle), recent)
    open_created = np.maximum(created, np.minimum(open_from, now))[open_owner]
    # How far an open deal got: its age over a usual cycle, in five steps.
    progress = (now - open_created) / np.where(in_progress[open_owner], buying.first_cycle[open_owner],
                                               params.cycle_days * DAY)
    open_stage = np.clip((progress * len(OPEN_DEAL_STAGES)).astype(np.int64), 0, len(OPEN_DEAL_STAGES) - 1)

    n_won, n_lost, n_open = len(won_owner), len(lost_owner), len(open_owner)
    owner = np.concatenate((won_owner, lost_owner, open_owner))
    deal_created = np.concatenate((won_created, lost_created, open_created))
    closed = np.concatenate((buying.purchase_time, lost_closed, np.full(n_open, np.nan)))
    amount = np.concatenate((
        buying.purchase_amount,
        _amounts(rng, params.p, nu_all[lost_owner]),
        _amounts(rng, params.p, nu_all[open_owner]),
    ))
    status = np.concatenate((
        np.full(n_won, StatusCode.WON, dtype=np.int8),
        np.full(n_lost, StatusCode.LOST, dtype=np.int8),
        np.full(n_open, StatusCode.OPEN, dtype=np.int8),
    ))
    stage = np.concatenate((
        np.full(n_won, len(OPEN_DEAL_STAGES)), np.full(n_lost, len(OPEN_DEAL_STAGES) + 1), open_stage,
    ))
    # Deal names: the first purchase is new business, repeats are renewals/expansions/upsells.
    first_deal = np.concatenate((buying.purchase_rank == 0, ~buying.converted[lost_owner],
                                 ~buying.converted[open_owner]))
    kind = np.where(first_deal, 0, rng.integers(1, len(_DEAL_KINDS), len(owner)))
    # Text columns are built as codes into small pools and turned into strings once, after sorting:
    # moving object arrays around costs a reference count per cell, codes do not.
    coded: dict[str, tuple[list[str], IntArray]] = {
        "dealname": ([f"{k} – {p}" for k in _DEAL_KINDS for p in _PRODUCTS],
                     kind * len(_PRODUCTS) + rng.integers(0, len(_PRODUCTS), len(owner))),
        "pipeline": (["default"], np.zeros(len(owner), dtype=np.int64)),
        "dealstage": ([*OPEN_DEAL_STAGES, "closedwon", "closedlost"], stage),
        "deal_currency_code": ([params.currency], np.zeros(len(owner), dtype=np.int64)),
    }
    # MEDDIC on a share of open deals (the last rows); the further the deal, the more items are filled in.
    open_rows = np.arange(n_won + n_lost, len(owner))
    filled = rng.random(n_open) < params.meddic_share
    item_odds = 0.2 + 0.15 * open_stage
    for prop, answers in _MEDDIC.items():
        codes = np.full(len(owner), -1, dtype=np.int64)
        known = filled & (rng.random(n_open) < item_odds)
        codes[open_rows[known]] = rng.integers(0, len(answers), int(known.sum()))
        coded[prop] = (list(answers), codes)

    # Rows in creation order, so deal ids grow with time as a CRM's do.
    order = np.argsort(deal_created, kind="stable")
    columns = DealColumns(
        ids=_id_strings(len(order)),
        contact_index=owner[order].astype(np.int64),
        amount=amount[order],
        status=status[order],
        created_at=deal_created[order],
        closed_at=closed[order],
        properties={name: _decode(*coded[name], order) for name in DEAL_PROPERTY_TYPES},
    )
    return _Deals(columns=columns, open_per_contact=np.bincount(open_owner, minlength=n).astype(np.int64),
                  lost_per_contact=lost_count.astype(np.int64))


def _cycles(rng: np.random.Generator, params: GeneratorParams, n: int) -> FloatArray:
    return np.exp(rng.normal(math.log(params.cycle_days), 0.6, n)) * DAY


def _second_contacts(people: _People, deals: DealColumns, params: GeneratorParams,
                     rng: np.random.Generator) -> IntArray:
    """A colleague (same company, created before the deal) on some deals; -1 otherwise."""
    n = len(people.company)
    if n == 0 or len(deals) == 0:
        return np.full(len(deals), -1, dtype=np.int64)
    by_company = np.argsort(people.company, kind="stable")
    size = np.bincount(people.company)
    start = np.cumsum(size) - size
    position = np.empty(n, dtype=np.int64)
    position[by_company] = np.arange(n) - start[people.company[by_company]]
    buyer = deals.contact_index
    group = size[people.company[buyer]]
    # Pick another member uniformly: draw among group-1 slots and skip over the buyer's own slot.
    slot = np.floor(rng.random(len(buyer)) * np.maximum(group - 1, 1)).astype(np.int64)
    slot += slot >= position[buyer]
    slot = np.minimum(slot, group - 1)
    colleague = by_company[start[people.company[buyer]] + slot]
    wanted = (group > 1) & (rng.random(len(buyer)) < params.second_contact_share)
    ok = wanted & (colleague != buyer) & (people.created[colleague] <= deals.created_at)
    return np.where(ok, colleague, -1).astype(np.int64)


# --- status fields and the true stage ------------------------------------------------------------------


@dataclass
class _Status:
    props: dict[str, FloatArray | ObjArray]
    true_stage: ObjArray


def _status_fields(people: _People, engagement: dict[str, FloatArray | ObjArray], buying: _Buying,
                   deals: _Deals, now: float, params: GeneratorParams, rng: np.random.Generator) -> _Status:
    n = len(people.created)
    customer = buying.converted
    has_open = deals.open_per_contact > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        overdue = (now - buying.last) / WEEK > _AT_RISK_GAPS / buying.lam
    engaged = (
        (engagement["num_conversion_events"] >= _LEAD_FORMS)
        | (engagement["hs_email_click"] >= _LEAD_CLICKS)
        | (engagement["hs_analytics_num_page_views"] >= _LEAD_PAGE_VIEWS)
    )
    conditions = [
        customer & ~buying.alive,
        customer & overdue,
        customer & (buying.n_purchases >= 2),
        customer,
        has_open,
        engaged,
    ]
    stage_pool = _pool(TRUE_STAGES)
    index = np.select(conditions, [6, 5, 4, 3, 2, 1], default=0)
    true_stage = stage_pool[index]

    # HubSpot lead status: sales' own view of a prospect, blank for many contacts and most customers.
    draw = rng.random(n)
    young = (now - people.created) < 14 * DAY
    lead_status = np.select(
        [
            customer & (draw < 0.6),
            customer,
            has_open & (draw < 0.7),
            has_open,
            (people.fit < -0.8) & (draw < 0.5),
            young & (draw < 0.8),
            draw < 0.25,
            draw < 0.40,
            draw < 0.55,
            draw < 0.65,
        ],
        [-1, 3, 2, 3, 4, 0, -1, 1, 5, 3],
        default=-1,
    )
    # Code -1 (blank) picks the pool's last entry, None.
    lead_status_col = _pool(["NEW", "OPEN", "IN_PROGRESS", "CONNECTED", "UNQUALIFIED", "ATTEMPTED_TO_CONTACT", None])[
        lead_status
    ]

    # Referrals made, known for customers: happier (more frequent, alive) customers refer more.
    referrals = np.where(customer, rng.poisson(0.15 * buying.n_purchases * np.where(buying.alive, 1.0, 0.5)), np.nan)
    subscription = customer & (rng.random(n) < params.subscription_share)
    contract_end = np.where(subscription, buying.last + YEAR, np.nan)
    contract_end = np.floor(contract_end)

    # Native HubSpot lifecycle stage as a portal would have it: forward-only, so churned stay "customer".
    opens = engagement["hs_email_open"]
    lifecycle = np.select(
        [
            customer & buying.alive & (referrals >= 2),
            customer,
            has_open,
            np.isin(lead_status, [2, 3]),
            engaged & (opens >= 10),
            engaged,
            rng.random(n) < 0.03,
        ],
        [6, 5, 4, 3, 2, 1, 7],
        default=0,
    )
    lifecycle_pool = _pool(["subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity",
                            "customer", "evangelist", "other"])
    return _Status(
        props={
            "hs_lead_status": lead_status_col,
            "referrals": referrals.astype(np.float64),
            "contract_end_date": contract_end,
            "lifecyclestage": lifecycle_pool[lifecycle],
        },
        true_stage=true_stage,
    )


# --- helpers -------------------------------------------------------------------------------------------

_STATUS: Final = {StatusCode.OPEN: DealStatus.OPEN, StatusCode.WON: DealStatus.WON, StatusCode.LOST: DealStatus.LOST}


def _pool(values: tuple[str, ...] | list[str] | list[str | None]) -> ObjArray:
    """An object array of shared ``str`` objects, indexed to fill columns without creating new strings."""
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def _shares(table: tuple[tuple[str, float, float], ...]) -> FloatArray:
    weights = np.array([row[1] for row in table])
    return np.asarray(weights / weights.sum(), dtype=np.float64)


def _effects(table: tuple[tuple[str, float, float], ...]) -> FloatArray:
    return np.array([row[2] for row in table], dtype=np.float64)


def _id_strings(n: int) -> ObjArray:
    """Ids "1", "2", ... as an object array of ``str``, numbered like a CRM's object ids."""
    out = np.empty(n, dtype=object)
    out[:] = list(map(str, range(1, n + 1)))  # three times faster than numpy's str conversion
    return out


def _decode(pool: list[str], codes: IntArray, order: IntArray) -> ObjArray:
    """``pool[code]`` for each row of ``order``; code -1 means unknown (None)."""
    return _pool([*pool, None])[codes[order]]


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _slug(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def _record_value(value: object, kind: FieldType) -> PropertyValue:
    """A column cell as a record property value (None when unknown); counts become ints as a CRM sends them."""
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, int | float) or math.isnan(value):
        return None
    number = float(value)
    if kind is FieldType.DATETIME:
        return _dt(number)
    if kind is FieldType.BOOL:
        return number != 0.0
    return int(number) if number.is_integer() else number
