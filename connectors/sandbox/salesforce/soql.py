"""A SOQL subset: parser, type checker and evaluator.

Supported: ``SELECT`` field paths (``Id, Email, Opportunity.Amount``), ``COUNT()``, one level of child
sub-query (``(SELECT ContactId FROM OpportunityContactRoles)``), ``FROM``, ``WHERE`` with ``AND``/``OR``/``NOT``,
parentheses, ``= != <> < <= > >=``, ``[NOT] IN (...)``, ``LIKE``, ``NULL``/``TRUE``/``FALSE``, date and dateTime
literals and the date literals ``TODAY``, ``YESTERDAY``, ``TOMORROW``, ``LAST_N_DAYS:n``, ``NEXT_N_DAYS:n``,
``N_DAYS_AGO:n``; ``ORDER BY`` several fields ``ASC|DESC NULLS FIRST|LAST``; ``LIMIT`` and ``OFFSET``.

Behaviours kept because connectors trip over them (SOQL and SOSL Reference,
https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/):

* ``AND`` and ``OR`` cannot be mixed at one level without parentheses (``MALFORMED_QUERY``);
* a dateTime field compared with a quoted string or a bare date fails with "value of filter criterion for
  field 'X' must be of type dateTime and should not be enclosed in quotes" (``INVALID_FIELD``);
* text comparisons and ``LIKE`` are case-insensitive; ``!=`` also matches null values;
* a field the user cannot see (field-level security) is "No such column" exactly like a missing field
  (https://salesforcedictionary.com/errors/invalid-field-no-such-column);
* an ``OFFSET`` above 2,000 is refused (``NUMBER_OUTSIDE_VALID_RANGE``);
* ``convertCurrency(field) [alias]`` in ``SELECT`` only, on currency fields of a multi-currency org (the value
  in the running user's currency, see :mod:`connectors.sandbox.salesforce.currency`); "You can't use the
  convertCurrency() function in a WHERE clause. If you do, an error is returned", nor in ``ORDER BY``, and an
  alias is required when the field is selected twice
  (https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_querying_currency_fields.htm;
  the error codes are not documented: ``MALFORMED_QUERY`` for the grammar, ``INVALID_FIELD`` for the rest).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from connectors.sandbox.salesforce import ids
from connectors.sandbox.salesforce.errors import ApiError
from connectors.sandbox.salesforce.schema import ChildRelationship, FieldDef, ObjectDef
from connectors.sandbox.salesforce.values import parse_date, parse_datetime, to_json

Record = dict[str, Any]

MAX_OFFSET = 2000

_TOKEN = re.compile(
    r"""(?P<ws>\s+)
    |(?P<string>'(?:[^'\\]|\\.)*')
    |(?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
    |(?P<date>\d{4}-\d{2}-\d{2})
    |(?P<number>-?\d+(?:\.\d+)?)
    |(?P<datelit>[A-Za-z_]+:-?\d+)
    |(?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    |(?P<op>!=|<>|<=|>=|=|<|>)
    |(?P<punct>[(),])
    """,
    re.VERBOSE,
)

_KEYWORDS = {"SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "ASC", "DESC", "NULLS",
             "FIRST", "LAST", "LIMIT", "OFFSET", "NULL", "TRUE", "FALSE", "COUNT", "INCLUDES", "EXCLUDES"}
_DAY_LITERALS = {"TODAY": 0, "YESTERDAY": -1, "TOMORROW": 1}
_N_DAY_LITERALS = {"LAST_N_DAYS", "NEXT_N_DAYS", "N_DAYS_AGO"}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\",
            "%": "\\%", "_": "\\_"}


@dataclass(frozen=True)
class Token:
    """One lexical token with its offset in the query text (for error carets)."""

    kind: str
    text: str
    pos: int

    @property
    def upper(self) -> str:
        return self.text.upper()


# ---------------------------------------------------------------- AST


@dataclass(frozen=True)
class Literal:
    """A literal in a condition. ``kind``: string, number, boolean, null, date, datetime, range."""

    kind: str
    value: Any
    token: Token


@dataclass(frozen=True)
class FieldPath:
    """A (possibly dotted) field reference."""

    parts: tuple[str, ...]
    token: Token


@dataclass(frozen=True)
class Converted:
    """``convertCurrency(path) [alias]`` in ``SELECT``."""

    path: FieldPath
    alias: str | None
    token: Token


@dataclass(frozen=True)
class Condition:
    """``path op value`` (``value`` is a list for IN / NOT IN)."""

    path: FieldPath
    op: str
    value: Literal | tuple[Literal, ...]


@dataclass(frozen=True)
class Junction:
    """``AND`` / ``OR`` of several expressions, or ``NOT`` of one."""

    op: str
    items: tuple[Expr, ...]


Expr = Condition | Junction


@dataclass(frozen=True)
class OrderItem:
    """One ``ORDER BY`` key."""

    path: FieldPath
    descending: bool
    nulls_last: bool


@dataclass
class Query:
    """A parsed ``SELECT``."""

    object_token: Token
    fields: list[FieldPath | Query | Converted] = field(default_factory=list)
    count: bool = False
    where: Expr | None = None
    order: list[OrderItem] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None

    @property
    def object_name(self) -> str:
        return self.object_token.text


# ---------------------------------------------------------------- errors


def _caret(text: str, pos: int) -> tuple[str, int, int]:
    before = text[:pos]
    row = before.count("\n") + 1
    line_start = before.rfind("\n") + 1
    line_end = text.find("\n", pos)
    line = text[line_start : line_end if line_end >= 0 else len(text)]
    return line, row, pos - line_start + 1


def query_error(text: str, pos: int, code: str, detail: str) -> ApiError:
    """An error with Salesforce's caret rendering: the query line, ``^``, ``ERROR at Row:r:Column:c``, detail."""
    line, row, col = _caret(text, pos)
    return ApiError(400, code, f"\n{line}\n{' ' * (col - 1)}^\nERROR at Row:{row}:Column:{col}\n{detail}")


def no_such_column(text: str, token: Token, name: str, obj: str) -> ApiError:
    """``INVALID_FIELD`` for a missing or invisible field."""
    return query_error(
        text, token.pos, "INVALID_FIELD",
        f"No such column '{name}' on entity '{obj}'. If you are attempting to use a custom field, be sure to append "
        "the '__c' after the custom field name. Please reference your WSDL or the describe call for the "
        "appropriate names.")


def unsupported_type(text: str, token: Token, name: str) -> ApiError:
    """``INVALID_TYPE`` for an unknown sObject."""
    return query_error(
        text, token.pos, "INVALID_TYPE",
        f"sObject type '{name}' is not supported. If you are attempting to use a custom object, be sure to append "
        "the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate "
        "names.")


# ---------------------------------------------------------------- parser


def tokenize(text: str) -> list[Token]:
    """Split a query into tokens; an unknown character is ``MALFORMED_QUERY``."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            if text[pos] == "'":
                raise query_error(text, pos, "MALFORMED_QUERY",
                                  f"line 1:{len(text)} mismatched character '<EOF>' expecting \"'\"")
            raise query_error(text, pos, "MALFORMED_QUERY", f"unexpected token: {text[pos]}")
        kind = match.lastgroup or "ws"
        if kind != "ws":
            tokens.append(Token(kind, match.group(), pos))
        pos = match.end()
    tokens.append(Token("eof", "<EOF>", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0

    # -- token helpers
    def peek(self, offset: int = 0) -> Token:
        return self.tokens[min(self.index + offset, len(self.tokens) - 1)]

    def next(self) -> Token:
        token = self.peek()
        self.index += 1
        return token

    def error(self, token: Token | None = None) -> ApiError:
        token = token or self.peek()
        return query_error(self.text, token.pos, "MALFORMED_QUERY", f"unexpected token: {token.text}")

    def is_kw(self, word: str, offset: int = 0) -> bool:
        token = self.peek(offset)
        return token.kind == "ident" and token.upper == word

    def expect_kw(self, word: str) -> Token:
        if not self.is_kw(word):
            raise self.error()
        return self.next()

    def expect_punct(self, char: str) -> Token:
        token = self.peek()
        if token.kind != "punct" or token.text != char:
            raise self.error()
        return self.next()

    def accept_punct(self, char: str) -> bool:
        token = self.peek()
        if token.kind == "punct" and token.text == char:
            self.index += 1
            return True
        return False

    # -- grammar
    def query(self, *, sub: bool = False) -> Query:
        self.expect_kw("SELECT")
        fields: list[FieldPath | Query | Converted] = []
        count = False
        while True:
            if self.is_kw("CONVERTCURRENCY") and self.peek(1).text == "(":
                token = self.next()
                self.expect_punct("(")
                path = self.path()
                self.expect_punct(")")
                alias = self.next().text if self.peek().kind == "ident" and self.peek().upper not in _KEYWORDS \
                    else None
                fields.append(Converted(path, alias, token))
            elif self.is_kw("COUNT") and self.peek(1).text == "(":
                self.next()
                self.expect_punct("(")
                if not self.accept_punct(")"):
                    raise self.error()
                count = True
            elif self.peek().text == "(" and not sub:
                self.next()
                fields.append(self.query(sub=True))
                self.expect_punct(")")
            else:
                fields.append(self.path())
            if not self.accept_punct(","):
                break
        if count and fields:
            raise self.error()
        self.expect_kw("FROM")
        object_token = self.next()
        if object_token.kind != "ident" or "." in object_token.text or object_token.upper in _KEYWORDS:
            raise self.error(object_token)
        query = Query(object_token, fields, count)
        if self.is_kw("WHERE"):
            self.next()
            query.where = self.expr()
        if self.is_kw("ORDER"):
            self.next()
            self.expect_kw("BY")
            while True:
                path = self.path()
                descending = False
                nulls_last: bool | None = None
                if self.is_kw("ASC") or self.is_kw("DESC"):
                    descending = self.next().upper == "DESC"
                if self.is_kw("NULLS"):
                    self.next()
                    if not (self.is_kw("FIRST") or self.is_kw("LAST")):
                        raise self.error()
                    nulls_last = self.next().upper == "LAST"
                # Default: nulls first ascending, last descending.
                query.order.append(OrderItem(path, descending, descending if nulls_last is None else nulls_last))
                if not self.accept_punct(","):
                    break
        if self.is_kw("LIMIT"):
            self.next()
            query.limit = self.integer()
        if self.is_kw("OFFSET"):
            self.next()
            token = self.peek()
            query.offset = self.integer()
            if query.offset > MAX_OFFSET:
                raise query_error(self.text, token.pos, "NUMBER_OUTSIDE_VALID_RANGE",
                                  f"Maximum SOQL offset allowed is {MAX_OFFSET}")
        if not sub and self.peek().kind != "eof":
            raise self.error()
        return query

    def integer(self) -> int:
        token = self.next()
        if token.kind != "number" or not token.text.isdigit():
            raise self.error(token)
        return int(token.text)

    def path(self) -> FieldPath:
        token = self.next()
        if token.kind != "ident" or token.upper in _KEYWORDS:
            raise self.error(token)
        return FieldPath(tuple(token.text.split(".")), token)

    def expr(self) -> Expr:
        first = self.factor()
        if not (self.is_kw("AND") or self.is_kw("OR")):
            return first
        op = self.peek().upper
        items = [first]
        while self.is_kw(op):
            self.next()
            items.append(self.factor())
        if self.is_kw("AND") or self.is_kw("OR"):
            # SOQL refuses "a AND b OR c": the precedence must be made explicit with parentheses.
            raise self.error()
        return Junction(op, tuple(items))

    def factor(self) -> Expr:
        if self.is_kw("NOT"):
            self.next()
            return Junction("NOT", (self.factor(),))
        if self.accept_punct("("):
            inner = self.expr()
            self.expect_punct(")")
            return inner
        path = self.path()
        token = self.peek()
        if token.kind == "op":
            self.next()
            op = "!=" if token.text == "<>" else token.text
            return Condition(path, op, self.literal())
        negate = False
        if self.is_kw("NOT") and self.is_kw("IN", 1):
            self.next()
            negate = True
        if self.is_kw("IN"):
            self.next()
            self.expect_punct("(")
            if self.is_kw("SELECT"):
                raise query_error(self.text, self.peek().pos, "MALFORMED_QUERY",
                                  "semi-join sub-selects are not supported by the sandbox")
            values = [self.literal()]
            while self.accept_punct(","):
                values.append(self.literal())
            self.expect_punct(")")
            return Condition(path, "NOT IN" if negate else "IN", tuple(values))
        if self.is_kw("LIKE"):
            self.next()
            return Condition(path, "LIKE", self.literal())
        raise self.error()

    def literal(self) -> Literal:
        token = self.next()
        if token.kind == "string":
            raw = token.text[1:-1]
            value = re.sub(r"\\(.)", lambda m: _ESCAPES.get(m[1], m[1]), raw)
            return Literal("string", value, token)
        if token.kind == "number":
            return Literal("number", float(token.text), token)
        if token.kind == "date":
            day = parse_date(token.text)
            if day is None:
                raise self.error(token)
            return Literal("date", day, token)
        if token.kind == "datetime":
            moment = parse_datetime(token.text)
            if moment is None:
                raise self.error(token)
            return Literal("datetime", moment, token)
        if token.kind == "datelit":
            name, _, amount = token.text.partition(":")
            if name.upper() not in _N_DAY_LITERALS:
                raise query_error(self.text, token.pos, "MALFORMED_QUERY", f"unexpected token: {token.text}")
            return Literal("range", (name.upper(), int(amount)), token)
        if token.kind == "ident":
            word = token.upper
            if word == "NULL":
                return Literal("null", None, token)
            if word in ("TRUE", "FALSE"):
                return Literal("boolean", word == "TRUE", token)
            if word in _DAY_LITERALS:
                return Literal("range", (word, 0), token)
        raise self.error(token)


def parse(text: str) -> Query:
    """Parse a SOQL query (raises ``ApiError`` with Salesforce's error codes and messages)."""
    return _Parser(text).query()


# ---------------------------------------------------------------- compile & evaluate


class Catalog(Protocol):
    """What the evaluator needs from the store."""

    def object(self, name: str) -> ObjectDef | None:
        """An object definition by name (case-insensitive)."""

    def readable(self, obj: ObjectDef, definition: FieldDef) -> bool:
        """Whether the running user may read the field (field-level security)."""

    def get(self, record_id: str) -> Record | None:
        """Any record by Id."""

    def children(self, relationship: ChildRelationship, parent_id: str, include_deleted: bool) -> list[Record]:
        """Child records of one parent."""

    def scan(self, obj: ObjectDef, include_deleted: bool) -> Iterable[Record]:
        """All records of one object, in Id order."""

    def now(self) -> datetime:
        """The current time (date literals are relative to it)."""

    def convert_currency(self, obj: ObjectDef, record: Record, field_name: str) -> Any:
        """``convertCurrency(field)`` of one record, or None when the org has one currency."""


Getter = Callable[[Record], Any]


@dataclass
class _Column:
    """A selected field path resolved against the schema."""

    hops: list[FieldDef]  # reference fields followed, in order
    leaf: FieldDef
    objects: list[ObjectDef]  # object of each hop target, then the leaf's object
    converted: bool = False  # convertCurrency(leaf): the value in the user's currency
    alias: str | None = None


@dataclass
class _SubColumn:
    relationship: ChildRelationship
    compiled: Compiled


@dataclass
class Compiled:
    """A query checked against the schema and ready to run."""

    obj: ObjectDef
    count: bool
    columns: list[_Column | _SubColumn]
    predicate: Callable[[Record], bool] | None
    order: list[tuple[Getter, bool, bool]]
    limit: int | None
    offset: int | None
    version: str
    catalog: Catalog
    id_filter: set[str] | None = None
    """Ids named by a top-level ``Id = ...`` / ``Id IN (...)`` (lets the store skip the full scan)."""

    def run(self, include_deleted: bool) -> list[Record]:
        """The matching records, ordered, offset and limited."""
        if self.id_filter is not None:
            source: Iterable[Record] = [r for r in (self.catalog.get(i) for i in sorted(self.id_filter))
                                        if r is not None and r["Id"][:3] == self.obj.key_prefix
                                        and (include_deleted or not r.get("IsDeleted"))]
        else:
            source = self.catalog.scan(self.obj, include_deleted)
        rows = [r for r in source if self.predicate(r)] if self.predicate else list(source)
        return self.finish(rows)

    def finish(self, rows: list[Record]) -> list[Record]:
        """Order, offset and limit rows."""
        for getter, descending, nulls_last in reversed(self.order):
            rows.sort(key=_sort_key(getter, descending, nulls_last), reverse=descending)
        if self.offset:
            rows = rows[self.offset :]
        if self.limit is not None:
            rows = rows[: self.limit]
        return rows

    def render(self, record: Record, include_deleted: bool = False) -> Record:
        """One result row as the REST API returns it (``attributes`` first, then the selected fields)."""
        out: Record = {"attributes": _attributes(self.obj, record["Id"], self.version)}
        for column in self.columns:
            if isinstance(column, _SubColumn):
                children = self.catalog.children(column.relationship, record["Id"], include_deleted)
                matched = [c for c in children if column.compiled.predicate is None or column.compiled.predicate(c)]
                matched = column.compiled.finish(matched)
                out[column.relationship.name] = None if not matched else {
                    "totalSize": len(matched), "done": True,
                    "records": [column.compiled.render(c, include_deleted) for c in matched]}
                continue
            if not column.hops and not column.converted:
                # The record's own field, the bulk of every row: no parent to walk to (the loop below would
                # not run and would land here too).
                out[column.leaf.name] = to_json(column.leaf, record.get(column.leaf.name))
                continue
            target: Record | None = out
            current: Record | None = record
            for hop, hop_obj in zip(column.hops, column.objects, strict=False):
                assert target is not None
                rel = hop.relationship_name or hop.name
                parent = self.catalog.get(current[hop.name]) if current and current.get(hop.name) else None
                if parent is None:
                    target.setdefault(rel, None)
                    target = None
                    break
                existing = target.get(rel)
                if existing is None:
                    existing = {"attributes": _attributes(hop_obj, parent["Id"], self.version)}
                    target[rel] = existing
                target = existing
                current = parent
            if column.converted:
                out[column.alias or column.leaf.name] = to_json(
                    column.leaf, self.catalog.convert_currency(self.obj, record, column.leaf.name))
            elif target is not None and current is not None:
                target[column.leaf.name] = to_json(column.leaf, current.get(column.leaf.name))
        return out

    def csv_columns(self) -> list[tuple[str, Callable[[Record], tuple[FieldDef, Any]]]]:
        """Bulk API column names (``Account.Name``) and cell getters."""
        result = []
        for column in self.columns:
            if isinstance(column, _SubColumn):
                continue
            name = ".".join([*(h.relationship_name or h.name for h in column.hops), column.leaf.name])
            result.append((column.alias or name, self._cell(column)))
        return result

    def _cell(self, column: _Column) -> Callable[[Record], tuple[FieldDef, Any]]:
        getter = _path_getter(self.catalog, column.hops, column.leaf)
        if column.converted:
            obj, name = self.obj, column.leaf.name

            def converted_cell(record: Record) -> tuple[FieldDef, Any]:
                return column.leaf, self.catalog.convert_currency(obj, record, name)

            return converted_cell

        def cell(record: Record) -> tuple[FieldDef, Any]:
            return column.leaf, getter(record)

        return cell

    def selects(self, name: str) -> bool:
        """Whether a top-level field of this name is selected (e.g. Tooling ``Metadata``)."""
        return any(isinstance(c, _Column) and not c.hops and c.leaf.name == name for c in self.columns)


def _attributes(obj: ObjectDef, record_id: str, version: str) -> dict[str, str]:
    prefix = "tooling/" if obj.tooling else ""
    return {"type": obj.name, "url": f"/services/data/v{version}/{prefix}sobjects/{obj.name}/{record_id}"}


def _sort_key(getter: Getter, descending: bool, nulls_last: bool) -> Callable[[Record], tuple[int, Any]]:
    # With reverse=True the null flag order flips, so choose the flag that puts nulls where asked.
    null_flag = (0 if nulls_last else 1) if descending else (1 if nulls_last else 0)
    value_flag = 1 - null_flag

    def key(record: Record) -> tuple[int, Any]:
        value = getter(record)
        if value is None:
            return (null_flag, 0)
        if isinstance(value, str):
            return (value_flag, value.lower())
        if isinstance(value, bool):
            return (value_flag, int(value))
        if isinstance(value, datetime):
            return (value_flag, value.timestamp())
        if isinstance(value, date):
            return (value_flag, value.toordinal())
        return (value_flag, value)

    return key


def _path_getter(catalog: Catalog, hops: Sequence[FieldDef], leaf: FieldDef) -> Getter:
    name = leaf.name
    if not hops:
        return lambda record: record.get(name)
    hop_names = [h.name for h in hops]

    def getter(record: Record) -> Any:
        current: Record | None = record
        for hop in hop_names:
            parent_id = current.get(hop) if current else None
            current = catalog.get(parent_id) if parent_id else None
            if current is None:
                return None
        return current.get(name) if current else None

    return getter


class _Compiler:
    def __init__(self, text: str, catalog: Catalog, version: str) -> None:
        self.text = text
        self.catalog = catalog
        self.version = version
        self.now = catalog.now().astimezone(UTC)

    def compile(self, query: Query, obj: ObjectDef | None = None) -> Compiled:
        obj = obj or self.catalog.object(query.object_name)
        if obj is None:
            raise unsupported_type(self.text, query.object_token, query.object_name)
        columns: list[_Column | _SubColumn] = []
        for item in query.fields:
            if isinstance(item, Query):
                relationship = obj.child(item.object_name)
                child_obj = self.catalog.object(relationship.child_object) if relationship else None
                if relationship is None or child_obj is None:
                    raise query_error(
                        self.text, item.object_token.pos, "INVALID_TYPE",
                        f"Didn't understand relationship '{item.object_name}' in FROM part of query call. If you are "
                        "attempting to use a custom relationship, be sure to append the '__r' after the custom "
                        "relationship name. Please reference your WSDL or the describe call for the appropriate "
                        "names.")
                columns.append(_SubColumn(relationship, self.compile(item, child_obj)))
            elif isinstance(item, Converted):
                columns.append(self.converted(obj, item, query.fields))
            else:
                columns.append(self.resolve(obj, item))
        if not columns and not query.count:
            raise query_error(self.text, query.object_token.pos, "MALFORMED_QUERY", "unexpected token: FROM")
        predicate = self.expr(obj, query.where) if query.where is not None else None
        order = []
        for order_item in query.order:
            column = self.resolve(obj, order_item.path)
            if not column.leaf.describe()["sortable"]:
                raise query_error(self.text, order_item.path.token.pos, "INVALID_FIELD",
                                  f"field '{column.leaf.name}' can not be sorted in a query call")
            order.append((_path_getter(self.catalog, column.hops, column.leaf), order_item.descending,
                          order_item.nulls_last))
        return Compiled(obj, query.count, columns, predicate, order, query.limit, query.offset, self.version,
                        self.catalog, self.id_filter(obj, query.where))

    def converted(self, obj: ObjectDef, item: Converted, selected: Sequence[FieldPath | Query | Converted]
                  ) -> _Column:
        column = self.resolve(obj, item.path)
        name = ".".join(item.path.parts)
        if column.hops or column.leaf.type != "currency":
            raise query_error(self.text, item.path.token.pos, "INVALID_FIELD",
                              f"convertCurrency() applies to a currency field of {obj.name}; '{name}' is not one")
        if self.catalog.object("CurrencyType") is None:
            raise query_error(self.text, item.token.pos, "INVALID_FIELD",
                              "convertCurrency() can only be used in an organization with multiple currencies")
        key = (item.alias or column.leaf.name).lower()
        for other in selected:
            other_key = (other.alias or other.path.parts[-1]) if isinstance(other, Converted) \
                else ".".join(other.parts) if isinstance(other, FieldPath) else None
            if other is not item and other_key is not None and other_key.lower() == key:
                raise query_error(self.text, item.token.pos, "INVALID_FIELD",
                                  f"duplicate field selected: {item.alias or column.leaf.name} (give convertCurrency() "
                                  "an alias to select the field twice)")
        return replace(column, converted=True, alias=item.alias)

    def id_filter(self, obj: ObjectDef, where: Expr | None) -> set[str] | None:
        if not isinstance(where, Condition) or len(where.path.parts) != 1 or where.path.parts[0].lower() != "id":
            return None
        if where.op == "=" and isinstance(where.value, Literal) and isinstance(where.value.value, str):
            normalized = ids.normalize(where.value.value)
            return {normalized} if normalized else set()
        if where.op == "IN" and isinstance(where.value, tuple):
            return {n for v in where.value if (n := ids.normalize(v.value))}
        return None

    def resolve(self, obj: ObjectDef, path: FieldPath) -> _Column:
        parts = list(path.parts)
        if len(parts) > 1 and parts[0].lower() == obj.name.lower() and obj.relationship(parts[0]) is None:
            parts = parts[1:]  # "Contact.Email" FROM Contact: the object name may qualify the field
        hops: list[FieldDef] = []
        objects: list[ObjectDef] = []
        current = obj
        for rel in parts[:-1]:
            hop = current.relationship(rel)
            target = self.catalog.object(hop.reference_to[0]) if hop and hop.reference_to else None
            if hop is None or target is None or not self.catalog.readable(current, hop):
                raise query_error(
                    self.text, path.token.pos, "INVALID_FIELD",
                    f"Didn't understand relationship '{rel}' in field path. If you are attempting to use a custom "
                    "relationship, be sure to append the '__r' after the custom relationship name. Please reference "
                    "your WSDL or the describe call for the appropriate names.")
            hops.append(hop)
            objects.append(target)
            current = target
        leaf = current.field(parts[-1])
        if leaf is None or not self.catalog.readable(current, leaf):
            raise no_such_column(self.text, path.token, parts[-1], current.name)
        return _Column(hops, leaf, objects)

    # -- WHERE
    def expr(self, obj: ObjectDef, node: Expr) -> Callable[[Record], bool]:
        if isinstance(node, Junction):
            parts = [self.expr(obj, item) for item in node.items]
            if node.op == "NOT":
                inner = parts[0]
                return lambda r: not inner(r)
            if node.op == "AND":
                return lambda r: all(p(r) for p in parts)
            return lambda r: any(p(r) for p in parts)
        return self.condition(obj, node)

    def condition(self, obj: ObjectDef, node: Condition) -> Callable[[Record], bool]:
        column = self.resolve(obj, node.path)
        leaf = column.leaf
        if leaf.type in ("textarea", "complexvalue"):
            raise query_error(self.text, node.path.token.pos, "INVALID_FIELD",
                              f"field '{leaf.name}' can not be filtered in a query call")
        getter = _path_getter(self.catalog, column.hops, leaf)
        if node.op in ("IN", "NOT IN"):
            assert isinstance(node.value, tuple)
            values = [self.value(leaf, v) for v in node.value]
            keys = {self._key(leaf, v) for v in values}
            negate = node.op == "NOT IN"

            def member(record: Record) -> bool:
                present = self._key(leaf, getter(record)) in keys
                return not present if negate else present

            return member
        assert isinstance(node.value, Literal)
        if node.op == "LIKE":
            if leaf.type not in ("string", "email", "phone", "url", "picklist", "textarea", "id", "reference"):
                raise query_error(self.text, node.value.token.pos, "INVALID_QUERY_FILTER_OPERATOR",
                                  f"invalid operator on {leaf.type} field: LIKE")
            if node.value.kind != "string":
                raise self._type_error(leaf, node.value)
            pattern = _like(node.value.value)
            return lambda r: (v := getter(r)) is not None and pattern.match(str(v)) is not None
        literal = node.value
        if literal.kind == "range":
            return self.range_condition(leaf, getter, node.op, literal)
        value = self.value(leaf, literal)
        return _comparison(node.op, getter, self._key(leaf, value), lambda v: self._key(leaf, v))

    def range_condition(self, leaf: FieldDef, getter: Getter, op: str, literal: Literal) -> Callable[[Record], bool]:
        if leaf.type not in ("date", "datetime"):
            raise self._type_error(leaf, literal)
        name, amount = literal.value
        today = self.now.date()
        if name in _DAY_LITERALS:
            start_day, end_day = today + timedelta(days=_DAY_LITERALS[name]), today + timedelta(
                days=_DAY_LITERALS[name] + 1)
        elif name == "LAST_N_DAYS":
            start_day, end_day = today - timedelta(days=amount), today + timedelta(days=1)
        elif name == "NEXT_N_DAYS":
            start_day, end_day = today + timedelta(days=1), today + timedelta(days=amount + 1)
        else:  # N_DAYS_AGO
            start_day, end_day = today - timedelta(days=amount), today - timedelta(days=amount - 1)
        if leaf.type == "date":
            start: Any = start_day
            end: Any = end_day
        else:
            start = datetime(start_day.year, start_day.month, start_day.day, tzinfo=UTC)
            end = datetime(end_day.year, end_day.month, end_day.day, tzinfo=UTC)

        def test(record: Record) -> bool:
            value = getter(record)
            if value is None:
                return op == "!="
            inside = bool(start <= value < end)
            outcomes = {"=": inside, "!=": not inside, "<": bool(value < start), "<=": bool(value < end),
                        ">": bool(value >= end), ">=": bool(value >= start)}
            return outcomes[op]

        return test

    def value(self, leaf: FieldDef, literal: Literal) -> Any:
        kind = leaf.type
        if literal.kind == "null":
            return None
        if kind in ("id", "reference"):
            if literal.kind != "string":
                raise self._type_error(leaf, literal)
            normalized = ids.normalize(literal.value)
            if normalized is None:
                raise query_error(self.text, literal.token.pos, "INVALID_QUERY_FILTER_OPERATOR",
                                  f"invalid ID field: {literal.value}")
            return normalized
        if kind in ("string", "email", "phone", "url", "picklist", "textarea"):
            if literal.kind != "string":
                raise self._type_error(leaf, literal)
            return literal.value
        if kind in ("double", "currency", "percent", "int"):
            if literal.kind != "number":
                raise self._type_error(leaf, literal)
            return literal.value
        if kind == "boolean":
            if literal.kind != "boolean":
                raise self._type_error(leaf, literal)
            return literal.value
        if kind == "date":
            if literal.kind != "date":
                raise self._type_error(leaf, literal)
            return literal.value
        if kind == "datetime":
            if literal.kind != "datetime":
                raise self._type_error(leaf, literal)
            return literal.value
        raise self._type_error(leaf, literal)

    def _type_error(self, leaf: FieldDef, literal: Literal) -> ApiError:
        soql_type = {"datetime": "dateTime", "reference": "reference", "id": "id", "email": "string",
                     "phone": "string", "url": "string", "picklist": "string", "textarea": "string",
                     "int": "int"}.get(leaf.type, leaf.type)
        quoted = soql_type in ("string", "id", "reference")
        advice = "should be enclosed in quotes" if quoted else "should not be enclosed in quotes"
        return query_error(self.text, literal.token.pos, "INVALID_FIELD",
                           f"value of filter criterion for field '{leaf.name}' must be of type {soql_type} and "
                           f"{advice}")

    @staticmethod
    def _key(leaf: FieldDef, value: Any) -> Any:
        # Text comparisons are case-insensitive; Ids compare in their 18-character form.
        if isinstance(value, str) and leaf.type not in ("id", "reference"):
            return value.lower()
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value


def _comparison(op: str, getter: Getter, target: Any, key: Callable[[Any], Any]) -> Callable[[Record], bool]:
    if op == "=":
        return lambda r: key(getter(r)) == target
    if op == "!=":
        return lambda r: key(getter(r)) != target
    if target is None:
        return lambda r: False

    def compare(record: Record) -> bool:
        value = getter(record)
        if value is None:
            return False
        value = key(value)
        if op == "<":
            return bool(value < target)
        if op == "<=":
            return bool(value <= target)
        if op == ">":
            return bool(value > target)
        return bool(value >= target)

    return compare


def _like(pattern: str) -> re.Pattern[str]:
    out = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            out.append(re.escape(pattern[index + 1]))
            index += 2
            continue
        out.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        index += 1
    return re.compile("^" + "".join(out) + "$", re.IGNORECASE | re.DOTALL)


def compile_query(text: str, catalog: Catalog, version: str) -> Compiled:
    """Parse and type-check ``text`` against the catalog's schema and field-level security."""
    return _Compiler(text, catalog, version).compile(parse(text))
