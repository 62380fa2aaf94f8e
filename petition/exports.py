"""Signer lists and organisers' counts as files: streamed, spreadsheet-safe, and audited.

A signer list is read row by row from the database and written out as it is read, so a million
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
from functools import reduce

from openpyxl import Workbook
from sqlalchemy import Select, String, case, cast, func, literal, or_, select, update

from . import countries
from .extensions import db
from .models import CONFIRMED, ExportLog, Petition, Signature

CHUNK = 1000
HEADER = ["Name", "E-mail", "Country", "Country code", "Town or postcode", "Comment", "Name public",
          "Keep informed", "Status", "Signed (UTC)", "Confirmed (UTC)"]
FORMULA_FIRST = frozenset("=+-@\t\r")
YES_NO = {True: "yes", False: "no"}
COLUMNS = (Signature.name, Signature.email, Signature.country, Signature.postcode, Signature.comment,
           Signature.public, Signature.updates, Signature.status, Signature.created_at, Signature.confirmed_at)


def _neutralised(column):
    """``neutralise`` done by the database, at C speed, for the CSV export's million rows."""
    return case((func.substr(column, 1, 1).in_(sorted(FORMULA_FIRST)), literal("'") + column), else_=column)


def _seconds(column):
    return func.substr(cast(column, String), 1, 19)  # "YYYY-MM-DD HH:MM:SS", as both engines write them


def _field(column):
    """A text column as one CSV field, neutralised, and quoted only where Python's csv module would quote it
    (a quote, comma or line break inside): the database builds the CSV, at C speed, for a million rows."""
    text = _neutralised(column)
    quoted = literal('"') + func.replace(text, '"', '""') + literal('"')
    return case((or_(*(column.like(f"%{mark}%") for mark in ('"', ",", "\r", "\n"))), quoted), else_=text)


def _joined(*parts):
    return reduce(lambda left, right: left + literal(",") + right, parts)


# The CSV line of a signature in three parts: the fields before the country's name, the country code (Python
# puts the name in), the fields after it. Python then only joins strings; fetching ten values a row and
# formatting them in Python had been most of the export's time.
CSV_LINE = (_joined(_field(Signature.name), _field(Signature.email)),
            Signature.country,
            _joined(Signature.country, _field(Signature.postcode), _field(Signature.comment),
                    case((Signature.public, "yes"), else_="no"), case((Signature.updates, "yes"), else_="no"),
                    Signature.status, _seconds(Signature.created_at),
                    func.coalesce(_seconds(Signature.confirmed_at), "")))


def _csv_line(fields: list) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(fields)
    return buffer.getvalue()


# Country names as CSV fields, quoted once ("Palestine, State of").
CSV_COUNTRY = {code: _csv_line([name]).rstrip("\r\n") for code, name in countries.NAMES.items()}


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


def _batches(petition: Petition, filters: Filters, columns=COLUMNS) -> Iterator[list]:
    """The selected rows, CHUNK at a time, through Core (no ORM bookkeeping per row)."""
    query = signatures(petition, filters, columns).execution_options(yield_per=CHUNK)
    result = db.session.connection().execute(query)
    yield from result.partitions()


def _typed_rows(petition: Petition, filters: Filters) -> Iterator[list]:
    """Rows for a workbook: neutralised text, real dates."""
    names = countries.NAMES
    for batch in _batches(petition, filters):
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
    """UTF-8 with a byte-order mark and CRLF, as spreadsheet programs expect; a chunk per 1000 rows."""
    yield ("\ufeff" + _csv_line(HEADER)).encode("utf-8")
    names, rows = CSV_COUNTRY, 0
    for batch in _batches(petition, filters, CSV_LINE):
        yield "".join([f"{head},{names.get(code, code)},{tail}\r\n" for head, code, tail in batch]).encode("utf-8")
        rows += len(batch)
    finish(log_id, rows)


def xlsx_chunks(petition: Petition, filters: Filters, log_id: int, chunk_size: int = 64 * 1024) -> Iterator[bytes]:
    """openpyxl's write-only workbook spools rows to disk; the finished file is then streamed and deleted."""
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
    """(day signed, country, status, signatures): the organisers' counts, pending and held included."""
    day = func.date(Signature.created_at)
    rows = db.session.execute(
        select(day, Signature.country, Signature.status, func.count())
        .where(Signature.petition_id == petition.id)
        .group_by(day, Signature.country, Signature.status)
        .order_by(day, Signature.country, Signature.status)
    ).all()
    return [(d.isoformat() if isinstance(d, date) else str(d), c, s, n) for d, c, s, n in rows]


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
