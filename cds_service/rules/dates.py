"""FHIR dates and instants as calendar dates in the patients' time zone, and ages in whole years."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo


def local_date(value: Any, zone: ZoneInfo) -> date | None:
    """The calendar day of a FHIR date/dateTime/instant where the patient is.

    An instant near midnight UTC is another day in Paris: the day is taken in `zone`. A dateTime without a
    zone is taken as written (FHIR allows it only without a time). Partial dates (`2026`, `2026-03`) are no
    calendar day: None.
    """
    if isinstance(value, datetime):
        return value.astimezone(zone).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return local_date(datetime.fromisoformat(value.replace("Z", "+00:00")), zone)
        except ValueError:
            return None
    return None


def age_on(birth_date: Any, day: date) -> int | None:
    """Completed years on `day`; None if the birth date is unknown or too partial to tell.

    A year-only or year-month birth date still gives the age when every day it allows gives the same age.
    """
    if isinstance(birth_date, datetime):
        birth_date = birth_date.date()
    if isinstance(birth_date, date):
        return day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day))
    if isinstance(birth_date, str):
        parts = birth_date.split("-")
        if len(parts) == 3:
            try:
                return age_on(date.fromisoformat(birth_date), day)
            except ValueError:
                return None
        try:
            year = int(parts[0])
            months = [int(parts[1])] if len(parts) > 1 else list(range(1, 13))
        except ValueError:
            return None
        earliest = age_on(date(year, months[0], 1), day)
        last = months[-1]
        last_day = 31 if last == 12 else (date(year, last + 1, 1) - date(year, last, 1)).days
        latest = age_on(date(year, last, last_day), day)
        return earliest if earliest == latest else None
    return None
