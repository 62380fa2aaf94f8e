"""Signer lists and organisers' counts as files: streamed, spreadsheet-safe, and audited.

A signer list is read a chunk of rows at a time and written out as it is read, so a million
signatures take no more memory than a thousand. Every cell that a spreadsheet program could take for a
formula is neutralised. Every export is recorded in ``ExportLog`` before its first byte leaves.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import (Column, FromClause, LargeBinary, MetaData, Select, String, Table, bindparam, case, cast, column,
                        func, insert, literal, literal_column, select, update, values)

from . import countries
from .extensions import db
from .models import CONFIRMED, PENDING, ExportLog, Petition, Signature, Submission

CHUNK = 1000
HEADER = ["Name", "E-mail", "Country", "Country code", "Town or postcode", "Comment", "Name public",
          "Keep informed", "Status", "Signed (UTC)", "Confirmed (UTC)"]
FORMULA_FIRST = frozenset("=+-@\t\r")
YES_NO = {True: "yes", False: "no"}
COLUMNS = (Signature.name, Signature.email, Signature.country, Signature.postcode, Signature.comment,
           Signature.public, Signature.updates, Signature.status, Signature.created_at, Signature.confirmed_at)


# The CSV export is built by the database a chunk of rows at a time, as one UTF-8 text: cells neutralised and
# separated by FIELD, each row ended by ROW, two control characters no cell may hold. Python then only
# swaps separators, and quotes the few rows that need it: fetching and formatting ten values a row in
# Python had been most of the export's time.
ROW, FIELD = b"\x1e", b"\x1f"
NEEDS_QUOTES = (b'"', b",", b"\r", b"\n")  # what makes Python's csv module quote a cell
CHUNK_ROWS = 2000


def _sql(value: str | int):
    """A constant written into the statement: SQLite evaluates a bound parameter again on every row."""
    return literal_column(str(value) if isinstance(value, int) else "'" + value.replace("'", "''") + "'")


def _neutralised(column, postgres: bool):
    """``neutralise`` done by the database, on the first character's code point (cheaper than a substring).
    Every formula character is at most U+0040 and nearly every cell begins above it (a letter): one
    comparison settles those, and only the rest are looked up in the list (which halves the cost)."""
    first = (func.ascii if postgres else func.unicode)(column)
    last_formula_char = max(map(ord, FORMULA_FIRST))
    return case((first > _sql(last_formula_char), column),
                (first.in_([_sql(ord(char)) for char in sorted(FORMULA_FIRST)]), _sql("'") + column), else_=column)


def _seconds(column):
    """To the second, as text (YYYY-MM-DD HH:MM:SS) the way both engines write it."""
    return func.substr(cast(column, String), _sql(1), _sql(19))


def _country_names(connection) -> FromClause:
    """Country code -> name, for the database to join. SQLite gets a temporary table (with a key: it would
    scan a list of values once per row); PostgreSQL hashes a list of values."""
    if connection.dialect.name != "sqlite":
        return values(column("code", String), column("name", String), name="country_name").data(countries.COUNTRIES)
    table = Table("export_country_name", MetaData(), Column("code", String, primary_key=True),
                  Column("name", String, nullable=False), prefixes=["TEMPORARY"], sqlite_with_rowid=False)
    table.create(connection, checkfirst=True)  # per connection, and kept with it
    connection.execute(insert(table).prefix_with("OR REPLACE"),
                       [{"code": code, "name": name} for code, name in countries.COUNTRIES])
    return table


def _csv_line(fields: list) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(fields)
    return buffer.getvalue()


@dataclass(frozen=True)
class Filters:
    status: str = CONFIRMED  # "confirmed", or "all"
    since: date | None = None  # signed on or after
    until: date | None = None  # signed on or before
    country: str | None = None
    updates_only: bool = False  # "keep me informed" consenters, for the mailing list

    def as_dict(self) -> dict:
        return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in asdict(self).items()
                if v not in (None, False)}


def neutralise(value: str) -> str:
    """Text a spreadsheet would run as a formula gets a leading apostrophe and stays text."""
    return "'" + value if value[:1] in FORMULA_FIRST else value


def signatures(petition: Petition, filters: Filters, columns=COLUMNS) -> Select:
    query = select(*columns).where(Signature.petition_id == petition.id).order_by(Signature.id)
    if filters.status != "all":
        query = query.where(Signature.status == filters.status)
    if filters.since:
        query = query.where(Signature.created_at >= datetime.combine(filters.since, time.min))
    if filters.until:
        query = query.where(Signature.created_at < datetime.combine(filters.until + timedelta(days=1), time.min))
    if filters.country:
        query = query.where(Signature.country == filters.country)
    if filters.updates_only:
        query = query.where(Signature.updates.is_(True))
    return query


def _batches(petition: Petition, filters: Filters, first: int | None = None,
             last: int | None = None) -> Iterator[list]:
    """The selected rows (those with ids from ``first`` to ``last``, if given), CHUNK at a time, through Core
    (no ORM bookkeeping per row)."""
    query = signatures(petition, filters)
    if first is not None and last is not None:
        query = query.where(Signature.id.between(first, last))
    result = db.session.connection().execute(query.execution_options(yield_per=CHUNK))
    yield from result.partitions()


def _typed_rows(petition: Petition, filters: Filters, first: int | None = None,
                last: int | None = None) -> Iterator[list]:
    """Rows for a workbook: neutralised text, real dates."""
    names = countries.NAMES
    for batch in _batches(petition, filters, first, last):
        for name, email, country, postcode, comment, public, updates, status, signed, confirmed in batch:
            yield [neutralise(name), neutralise(email), names.get(country, country), country, neutralise(postcode),
                   neutralise(comment), YES_NO[public], YES_NO[updates], status, signed.replace(microsecond=0),
                   confirmed.replace(microsecond=0) if confirmed else None]


def begin(actor: str, petition: Petition, kind: str, fmt: str, filters: dict) -> int:
    """Record an export before it starts, so that even a broken-off download is on the record."""
    log = ExportLog(actor=actor, petition_id=petition.id, kind=kind, format=fmt, filters=filters)
    db.session.add(log)
    db.session.commit()
    return log.id


def finish(log_id: int, rows: int) -> None:
    db.session.execute(update(ExportLog).where(ExportLog.id == log_id).values(rows=rows))
    db.session.commit()


def csv_chunks(petition: Petition, filters: Filters, log_id: int) -> Iterator[bytes]:
    """UTF-8 with a byte-order mark and CRLF, as spreadsheet programs expect; a chunk per CHUNK_ROWS rows,
    byte for byte what ``csv.writer`` writes for the neutralised cells (a test holds it to that)."""
    yield ("\ufeff" + _csv_line(HEADER)).encode("utf-8")
    rows = 0
    for text, number, first, last in _csv_texts(petition, filters):
        rows += number
        if text.count(ROW) == number and text.count(FIELD) == number * (len(HEADER) - 1):
            yield _csv_from_text(text)
        else:  # a separator inside a cell (never typed, but possible in old data): the slow, sure way
            yield _csv_from_rows(petition, filters, first, last)
    finish(log_id, rows)


def _csv_texts(petition: Petition, filters: Filters) -> Iterator[tuple[bytes, int, int, int]]:
    """(text, rows, first id, last id) per chunk, read in id order from the list index; no cursor is held
    open between chunks."""
    connection = db.session.connection()
    postgres = connection.dialect.name == "postgresql"
    names = _country_names(connection)
    yes, no = _sql("yes"), _sql("no")
    if postgres:
        times, time_spec = (_seconds(Signature.created_at),
                            func.coalesce(_seconds(Signature.confirmed_at), _sql(""))), "%s"
    else:  # SQLite's printf cuts the stored text to the second itself (and writes NULL as ''): no call per cell
        times, time_spec = (Signature.created_at, Signature.confirmed_at), "%.19s"
    cells = (_neutralised(Signature.name, postgres), _neutralised(Signature.email, postgres),
             func.coalesce(names.c.name, Signature.country), Signature.country,
             _neutralised(Signature.postcode, postgres), _neutralised(Signature.comment, postgres),
             case((Signature.public, yes), else_=no), case((Signature.updates, yes), else_=no), Signature.status,
             *times)
    template = FIELD.decode().join(["%s"] * (len(cells) - len(times)) + [time_spec] * len(times)) + ROW.decode()
    line = (func.format if postgres else func.printf)(literal(template, String), *cells)
    page = (signatures(petition, filters, (line.label("line"), Signature.id.label("id")))
            .outerjoin(names, names.c.code == Signature.country)
            .where(Signature.id > bindparam("last")).limit(CHUNK_ROWS).subquery())
    # PostgreSQL is told the order; SQLite's group_concat keeps that of the ordered subquery it reads.
    if postgres:
        from sqlalchemy.dialects.postgresql import aggregate_order_by  # imported only here: 70 ms of every start

        text = func.convert_to(func.string_agg(page.c.line, aggregate_order_by(_sql(""), page.c.id)), _sql("UTF8"))
    else:
        text = cast(func.group_concat(page.c.line, _sql("")), LargeBinary)
    chunk_query = select(text, func.count(), func.min(page.c.id), func.max(page.c.id))
    last = 0
    while True:
        chunk, number, first, last = connection.execute(chunk_query, {"last": last}).one()
        if not number:
            return
        yield bytes(chunk), number, first, last


def _csv_from_text(text: bytes) -> bytes:
    """A chunk's text as CSV lines: separators swapped, and rows with a cell that needs quotes rewritten by
    ``csv.writer`` (cells hold no FIELD or ROW: ``csv_chunks`` counted them)."""
    if any(mark in text for mark in NEEDS_QUOTES):
        rows = text.split(ROW)
        for n, row in enumerate(rows):
            if b'"' in row or b"," in row or b"\r" in row or b"\n" in row:
                rows[n] = _quoted(row)
        text = ROW.join(rows)
    return text.replace(FIELD, b",").replace(ROW, b"\r\n")


def _quoted(row: bytes) -> bytes:
    return _csv_line(row.decode("utf-8").split(FIELD.decode()))[:-2].encode("utf-8")  # the line's end is ROW


def _csv_from_rows(petition: Petition, filters: Filters, first: int, last: int) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in _typed_rows(petition, filters, first, last):
        writer.writerow(["" if cell is None else cell.isoformat(sep=" ") if isinstance(cell, datetime) else cell
                         for cell in row])
    return buffer.getvalue().encode("utf-8")


def xlsx_chunks(petition: Petition, filters: Filters, log_id: int, chunk_size: int = 64 * 1024) -> Iterator[bytes]:
    """openpyxl's write-only workbook spools rows to disk; the finished file is then streamed and deleted."""
    from openpyxl import Workbook  # here: the CSV export and every other command start without it

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title="Signatures")
    sheet.append(HEADER)
    rows = 0
    for row in _typed_rows(petition, filters):
        sheet.append(row)
        rows += 1
    handle, path = tempfile.mkstemp(suffix=".xlsx")
    os.close(handle)
    try:
        workbook.save(path)
        finish(log_id, rows)
        with open(path, "rb") as stream:
            while chunk := stream.read(chunk_size):
                yield chunk
    finally:
        os.unlink(path)


def counts_by_day_country_status(petition: Petition) -> list[tuple[str, str, str, int]]:
    """(day signed, country, status, signatures): the organisers' counts, held signatures and pending
    submissions (nobody has confirmed them yet) included."""
    day = func.date(Signature.created_at)
    rows = db.session.execute(
        select(day, Signature.country, Signature.status, func.count())
        .where(Signature.petition_id == petition.id)
        .group_by(day, Signature.country, Signature.status)
    ).all()
    submitted = func.date(Submission.created_at)
    rows += db.session.execute(
        select(submitted, Submission.country, literal(PENDING), func.count())
        .where(Submission.petition_id == petition.id)
        .group_by(submitted, Submission.country)
    ).all()
    return sorted((d.isoformat() if isinstance(d, date) else str(d), c, s, n) for d, c, s, n in rows)


def counts_csv(rows: list[tuple[str, str, str, int]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["day", "country", "status", "signatures"])
    writer.writerows(rows)
    return buffer.getvalue()


def counts_json(petition: Petition, rows: list[tuple[str, str, str, int]]) -> dict:
    by_country: dict[str, dict[str, int]] = {}
    by_day: dict[str, dict[str, int]] = {}
    for day, country, status, number in rows:
        for table, key in ((by_country, country), (by_day, day)):
            entry = table.setdefault(key, {"confirmed": 0, "pending": 0, "held": 0})
            entry[status] = entry.get(status, 0) + number
    return {"slug": petition.slug, "by_country": dict(sorted(by_country.items())), "by_day": by_day,
            "rows": [{"day": d, "country": c, "status": s, "signatures": n} for d, c, s, n in rows]}


def filename(petition: Petition, kind: str, fmt: str) -> str:
    return f"{petition.slug}-{kind}-{date.today().isoformat()}.{fmt}"
