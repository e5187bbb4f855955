"""CSV cells a spreadsheet shows as text and never evaluates, for every CSV we write (exports, file output)."""

from __future__ import annotations

import re

#: First characters that make Excel, LibreOffice Calc or Google Sheets read a cell as a formula: OWASP "CSV
#: Injection" lists =, +, -, @, tab and carriage return; OWASP ASVS 5.0 requirement 1.2.10 adds the NUL character.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\0")

#: A plain decimal number: a spreadsheet reads it as a constant, never as a formula, whatever its sign.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def neutralise_cell(value: object) -> object:
    """A CSV cell that a spreadsheet shows as text and never evaluates (OWASP: prefix ``'`` to risky cells).

    Numbers stay numbers, negative ones included: Python numbers, and text that is nothing but a decimal number
    (``-12.5``, ``+3``, ``-1e5``), cannot carry a formula, and prefixing them would turn every negative amount into
    text that sums and sorts wrongly. Any other text starting with a trigger character gets the ``'`` prefix.
    """
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value
