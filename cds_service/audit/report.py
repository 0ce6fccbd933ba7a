"""`cds-service report`: cards and clinicians' responses per rule, arm and site, and potential deviations.

A card counts once, with the outcome of its latest feedback (by outcomeTimestamp): accepted,
overridden, or no feedback. The potential deviations are every arm B warning (rules dex-after-cycle-2 and
dex-extends-past-cycle-2), by outcome: overridden (reason and comment), no feedback — outcome unknown
(most EHRs send no feedback, so a warning signed anyway looks exactly like this), and accepted; each with
the study subject identifier and the order's own first day and cycle (the day it was shown too).

With `--monitor FILE` (the JSON of `cds-service monitor`) it also lists each deviation found in the record
and how the cards saw it (`join_monitor`).

Rules and override reasons are named in words from the published CodeSystem (`Vocabulary`); a reason
stored without its display gets the service's own.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import html
import io
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, and_, func, select
from sqlalchemy.exc import SQLAlchemyError

from cds_service.audit import schema
from cds_service.audit.engine import is_memory, make_engine, parse_database_url
from cds_service.audit.migrate import current_revision, head_revision
from cds_service.audit.rows import DEVIATION_RULES
from cds_service.config import Config
from cds_service.errors import ConfigError
from cds_service.hooks.feedback import NO_REASONS, ReasonCatalogue
from cds_service.knowledge.model import Knowledge, shared_knowledge

FORMATS = ("csv", "json", "html")
NO_SITE = "(unidentified caller)"
OUTCOMES = ("accepted", "overridden", "noFeedback")
# The order the trial team reads arm B warnings in: the deviations first, the resolved last.
DEVIATION_OUTCOMES = ("overridden", "noFeedback", "accepted")
OUTCOME_WORDS = {"overridden": "overridden", "noFeedback": "no feedback — outcome unknown",
                 "accepted": "accepted"}


@dataclass(frozen=True)
class Vocabulary:
    """Words for the report's codes: rules (CodeSystem displays) and the override reasons the cards offer."""

    rules: Mapping[str, str] = field(default_factory=dict)
    reasons: ReasonCatalogue = NO_REASONS

    @classmethod
    def of(cls, knowledge: Knowledge) -> Vocabulary:
        return cls({code: coding.display for code, coding in knowledge.rule_codes.items()},
                   ReasonCatalogue.of(knowledge.override_reasons))

    def rule(self, code: str) -> str:
        return self.rules.get(code, code)

    def reason(self, system: str | None, code: str | None, display: str | None) -> dict[str, Any]:
        known = self.reasons.find(system, code)
        return {"system": system or (known[0] if known else None), "code": code,
                "display": display or (known[1] if known else None)}


# --- reading ---------------------------------------------------------------------------------------

def open_for_report(database_url: str) -> Engine:
    """A read-only engine on an existing audit store of this release's schema; a ConfigError says why not."""
    url = parse_database_url(database_url)
    if is_memory(url):
        raise ConfigError("CDS_DATABASE_URL names an in-memory database: it has nothing to report")
    if url.get_backend_name() == "sqlite" and not Path(url.database).expanduser().is_file():
        raise ConfigError(f"No audit store at {url.database} (CDS_DATABASE_URL, relative to the working "
                          "directory): the service has recorded nothing there")
    engine = make_engine(url, read_only=True)
    try:
        with engine.connect() as connection:
            revision = current_revision(connection)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise _unreadable(exc) from None
    if revision != head_revision():
        engine.dispose()
        found = "no audit tables" if revision is None else f"schema revision {revision}"
        raise ConfigError(f"The audit store (CDS_DATABASE_URL) has {found}; this release reads revision "
                          f"{head_revision()}. Start the service once on it to migrate it.")
    return engine


def _utc(value: datetime) -> datetime:
    # SQLite gives back the naive UTC instant that was stored.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _card_rows(engine: Engine, since: datetime | None) -> tuple[list[Mapping[str, Any]], int]:
    """Every card shown since `since` with its latest feedback; and the feedback for unknown cards."""
    card, feedback = schema.card, schema.feedback
    ranked = select(
        feedback.c.card_uuid, feedback.c.outcome, feedback.c.outcome_at, feedback.c.override_system,
        feedback.c.override_code, feedback.c.override_display, feedback.c.user_comment,
        func.row_number().over(partition_by=feedback.c.card_uuid,
                               order_by=(feedback.c.outcome_at.desc(), feedback.c.id.desc())).label("rank"),
    ).subquery()
    query = (
        select(card, ranked.c.outcome, ranked.c.outcome_at, ranked.c.override_system, ranked.c.override_code,
               ranked.c.override_display, ranked.c.user_comment)
        .select_from(card.outerjoin(ranked, and_(ranked.c.card_uuid == card.c.card_uuid, ranked.c.rank == 1)))
        .order_by(card.c.shown_at, card.c.id)
    )
    orphans = (select(func.count()).select_from(feedback)
               .where(~select(card.c.id).where(card.c.card_uuid == feedback.c.card_uuid).exists()))
    if since is not None:
        query = query.where(card.c.shown_at >= since)
        orphans = orphans.where(feedback.c.received_at >= since)
    # One transaction: the cards and the orphan count come from the same snapshot.
    with engine.begin() as connection:
        rows = [row._mapping for row in connection.execute(query)]
        unknown = connection.execute(orphans).scalar_one()
    return rows, unknown


def _unreadable(exc: SQLAlchemyError) -> ConfigError:
    return ConfigError(f"The audit store (CDS_DATABASE_URL) cannot be read: {type(exc).__name__}")


# --- building --------------------------------------------------------------------------------------

def _outcome(row: Mapping[str, Any]) -> str:
    return row["outcome"] if row["outcome"] in ("accepted", "overridden") else "noFeedback"


def _week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def build_report(engine: Engine, *, zone: ZoneInfo, since: date | None = None,
                 now: datetime | None = None, words: Vocabulary | None = None) -> dict[str, Any]:
    """The report as plain data (what the json format prints; csv and html are rendered from it)."""
    words = words or Vocabulary()
    start = datetime.combine(since, time.min, tzinfo=zone).astimezone(UTC) if since else None
    rows, unknown = _card_rows(engine, start)
    groups: dict[tuple[str, str | None, str], Counter] = defaultdict(Counter)
    reasons: dict[tuple[str, str | None, str], dict[tuple[Any, Any], dict[str, Any]]] = defaultdict(dict)
    weeks: dict[date, Counter] = defaultdict(Counter)
    deviations = []
    for row in rows:
        # The site the call was answered for (revision 0003), else the caller's tenant, as before it.
        site = row.get("site") or row["tenant"] or row["issuer"] or NO_SITE
        key = (row["rule"], row["arm"], site)
        outcome = _outcome(row)
        shown = _utc(row["shown_at"]).astimezone(zone)
        for counter in (groups[key], weeks[_week_start(shown.date())]):
            counter["shown"] += 1
            counter[outcome] += 1
        if outcome == "overridden":
            named = words.reason(row["override_system"], row["override_code"], row["override_display"])
            reason = reasons[key].setdefault((named["system"], named["code"]), {**named, "count": 0})
            reason["count"] += 1
        if row["rule"] in DEVIATION_RULES:
            deviations.append(_deviation(row, outcome, site, shown, zone=zone, words=words))
    deviations.sort(key=lambda d: DEVIATION_OUTCOMES.index(d["outcome"]))  # stable: shown order kept
    counts = [
        {"rule": rule, "ruleLabel": words.rule(rule), "arm": arm, "site": site, "shown": c["shown"],
         "accepted": c["accepted"], "overridden": c["overridden"], "noFeedback": c["noFeedback"],
         "overriddenByReason": sorted(reasons[(rule, arm, site)].values(), key=lambda r: (-r["count"],
                                                                                          str(r["code"])))}
        for (rule, arm, site), c in sorted(groups.items(), key=lambda item: (item[0][0], item[0][1] or "",
                                                                             item[0][2]))
    ]
    totals = Counter()
    for c in groups.values():
        totals.update(c)
    return {
        "title": "Dex-Free CDS audit report",
        "generatedAt": (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds"),
        "since": since.isoformat() if since else None,
        "timezone": zone.key,
        "totals": {name: totals[name] for name in ("shown", *OUTCOMES)},
        "counts": counts,
        "weeks": _weeks(weeks),
        "potentialDeviations": deviations,
        "deviationsByOutcome": {name: sum(d["outcome"] == name for d in deviations)
                                for name in DEVIATION_OUTCOMES},
        "feedbackForUnknownCards": unknown,
    }


def _deviation(row: Mapping[str, Any], outcome: str, site: str, shown: datetime, *, zone: ZoneInfo,
               words: Vocabulary) -> dict[str, Any]:
    """One arm B warning; `cycle`/`cycleDay` are those of the order's first day (the rules place it)."""
    overridden = outcome == "overridden"
    order_date = row.get("order_date")
    return {
        "outcome": outcome,
        "outcomeLabel": OUTCOME_WORDS[outcome],
        "studySubjectId": row["study_subject_id"],
        "patientKey": row["patient_key"],
        "patientKeySource": row["patient_key_source"],
        # None for cards recorded before the order's day was (schema revision 0002).
        "orderDate": order_date.isoformat() if order_date else None,
        "shownOn": shown.date().isoformat(),
        "study": row["study"],
        "arm": row["arm"],
        "regimen": row["regimen"],
        # The regimen (a site's adaptation or the published one) the order was checked against, url|version.
        "regimenCanonical": row.get("regimen_canonical"),
        "cycle": row["cycle"],
        "cycleDay": row["cycle_day"],
        "rule": row["rule"],
        "ruleLabel": words.rule(row["rule"]),
        "outcomeAt": (_utc(row["outcome_at"]).astimezone(zone).isoformat(timespec="minutes")
                      if row["outcome_at"] else None),
        "reason": (words.reason(row["override_system"], row["override_code"], row["override_display"])
                   if overridden else {"system": None, "code": None, "display": None}),
        "comment": row["user_comment"] if overridden else None,
        "site": site,
        "serviceId": row["service_id"],
        "cardUuid": row["card_uuid"],
    }


def _weeks(weeks: Mapping[date, Counter]) -> list[dict[str, Any]]:
    """One entry per week from the first to the last with a card; weeks without cards count zero."""
    if not weeks:
        return []
    out, day, last = [], min(weeks), max(weeks)
    while day <= last:
        c = weeks.get(day, Counter())
        out.append({"week": _iso_week(day), "start": day.isoformat(), "shown": c["shown"],
                    **{name: c[name] for name in OUTCOMES}})
        day += timedelta(days=7)
    return out


# --- rendering -------------------------------------------------------------------------------------

def render(report: Mapping[str, Any], fmt: str) -> str:
    """The report as csv, json or html text."""
    if fmt == "json":
        return json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    if fmt == "csv":
        return render_csv(report)
    if fmt == "html":
        return render_html(report)
    raise ValueError(f"unknown format {fmt!r}")


def _reason_label(reason: Mapping[str, Any]) -> str:
    if not reason.get("code"):
        return "no reason given"
    return f"{reason['code']} ({reason['display']})" if reason.get("display") else str(reason["code"])


def _cell(value: Any) -> Any:
    # A spreadsheet runs a cell that starts like a formula; free text from clinicians must not.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


COUNT_COLUMNS = ("rule", "arm", "site", "shown", "accepted", "overridden", "no_feedback",
                 "overridden_by_reason", "rule_label")
DEVIATION_COLUMNS = ("outcome", "study_subject_id", "patient_key", "order_date", "cycle", "cycle_day",
                     "shown_on", "arm", "regimen", "rule", "rule_label", "outcome_at", "reason_code",
                     "reason_display", "reason_system", "comment", "site", "service_id", "card_uuid",
                     "regimen_canonical")


def render_csv(report: Mapping[str, Any]) -> str:
    """Two tables, each under its own header row, separated by an empty row: counts, then deviations."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COUNT_COLUMNS)
    for c in report["counts"]:
        by_reason = "; ".join(f"{_reason_label(r)}: {r['count']}" for r in c["overriddenByReason"])
        writer.writerow([_cell(v) for v in (c["rule"], c["arm"], c["site"], c["shown"], c["accepted"],
                                            c["overridden"], c["noFeedback"], by_reason, c["ruleLabel"])])
    writer.writerow([])
    writer.writerow(DEVIATION_COLUMNS)
    for d in report["potentialDeviations"]:
        reason = d["reason"]
        writer.writerow([_cell(v) for v in (
            d["outcomeLabel"], d["studySubjectId"], d["patientKey"], d["orderDate"], d["cycle"],
            d["cycleDay"], d["shownOn"], d["arm"], d["regimen"], d["rule"], d["ruleLabel"], d["outcomeAt"],
            reason["code"], reason["display"], reason["system"], d["comment"], d["site"], d["serviceId"],
            d["cardUuid"], d["regimenCanonical"])])
    return out.getvalue()


_COLOURS = {"accepted": "#2e7d32", "overridden": "#e65100", "noFeedback": "#9e9e9e"}
_LABELS = {"accepted": "accepted", "overridden": "overridden", "noFeedback": "no feedback"}


def weekly_chart(weeks: list[Mapping[str, Any]]) -> str:
    """An inline SVG: per week, a bar of the cards shown, stacked by outcome."""
    if not weeks:
        return '<p class="empty">No cards in this period.</p>'
    bar, gap, height, left, bottom, top = 26, 10, 160, 40, 46, 10
    peak = max(w["shown"] for w in weeks) or 1
    width = left + len(weeks) * (bar + gap) + gap
    scale = height / peak
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + top + bottom}" '
             f'role="img" aria-label="Cards shown per week, by outcome">']
    for value in sorted({0, peak // 2, peak}):
        y = top + height - value * scale
        parts.append(f'<line x1="{left - 4}" x2="{width}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{value}</text>')
    for i, week in enumerate(weeks):
        x = left + gap + i * (bar + gap)
        y = top + height
        for name in OUTCOMES:
            count = week[name]
            if not count:
                continue
            h = count * scale
            y -= h
            parts.append(f'<rect x="{x}" y="{y:.1f}" width="{bar}" height="{h:.1f}" fill="{_COLOURS[name]}">'
                         f'<title>{html.escape(week["week"])}: {count} {_LABELS[name]}</title></rect>')
        label_y = top + height + 14
        parts.append(f'<text x="{x + bar / 2}" y="{label_y}" text-anchor="middle">'
                     f'{html.escape(week["week"][-3:])}</text>'
                     f'<text x="{x + bar / 2}" y="{label_y + 13}" text-anchor="middle" class="small">'
                     f'{html.escape(week["start"][5:])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _esc(value: Any) -> str:
    return "" if value is None else html.escape(str(value))


def _reason_words(reason: Mapping[str, Any]) -> str:
    """A reason as the trial team reads it: its display, else its code."""
    return reason.get("display") or reason.get("code") or "no reason given"


def _rule_cell(rule: str, label: str) -> str:
    if label == rule:
        return _esc(rule)
    return f'{_esc(label)}<br><span class="code">{_esc(rule)}</span>'


# Column headings and their share of the page's width: a fixed layout wraps every cell inside the page
# (the reason and the comment get the most room and are never cut).
_DEVIATION_HEAD = (("Study subject", 9), ("Order day", 9), ("Cycle", 6), ("Day", 5), ("Arm", 5),
                   ("Regimen", 8), ("Rule", 13), ("Feedback at", 10), ("Reason", 14), ("Comment", 15),
                   ("Site", 6))


def _regimen_cell(d: Mapping[str, Any]) -> str:
    if not d.get("regimenCanonical"):
        return _esc(d["regimen"])
    return f'{_esc(d["regimen"])}<br><span class="code">{_esc(d["regimenCanonical"])}</span>'


def _deviation_row(d: Mapping[str, Any]) -> str:
    subject = (_esc(d["studySubjectId"]) if d["studySubjectId"]
               else f'(no study subject id) key <span class="key-id">{_esc(d["patientKey"])}</span>')
    day = (_esc(d["orderDate"]) if d["orderDate"]
           else f"not recorded (card shown {_esc(d['shownOn'])})")
    reason = _esc(_reason_words(d["reason"])) if d["outcome"] == "overridden" else ""
    cells = [
        (subject, "subject"), (day, "day"), (_esc(d["cycle"]), "n"), (_esc(d["cycleDay"]), "n"),
        (_esc(d["arm"]), ""), (_regimen_cell(d), ""), (_rule_cell(d["rule"], d["ruleLabel"]), "rule"),
        (_esc(d["outcomeAt"].replace("T", " ")) if d["outcomeAt"] else "—", "day"), (reason, "text"),
        (_esc(d["comment"]), "text"), (_esc(d["site"]), ""),
    ]
    return "<tr>" + "".join(f'<td class="{cls}">{value}</td>' if cls else f"<td>{value}</td>"
                            for value, cls in cells) + "</tr>"


def _deviation_sections(report: Mapping[str, Any]) -> str:
    """One table per outcome: overridden, no feedback — outcome unknown, accepted."""
    parts = []
    cols = "".join(f'<col style="width:{share}%">' for _, share in _DEVIATION_HEAD)
    head = "".join(f"<th>{h}</th>" for h, _ in _DEVIATION_HEAD)
    for outcome in DEVIATION_OUTCOMES:
        rows = [d for d in report["potentialDeviations"] if d["outcome"] == outcome]
        parts.append(f"<h3>{_esc(OUTCOME_WORDS[outcome].capitalize())} ({len(rows)})</h3>")
        if not rows:
            parts.append('<p class="empty">None.</p>')
            continue
        parts.append(f'<table class="dev"><colgroup>{cols}</colgroup><thead><tr>{head}</tr></thead><tbody>'
                     f"{''.join(_deviation_row(d) for d in rows)}</tbody></table>")
    return "\n".join(parts)


_REPORT_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0;width:100%}th,td{border:1px solid #ccc;padding:4px 8px;
text-align:left;vertical-align:top;overflow-wrap:break-word}th{background:#f2f2f2}td.n{text-align:right}
svg text{font-size:11px;fill:#444}svg text.small{font-size:9px}svg .grid{stroke:#ddd}
.key{margin-right:1.5em}.key i{display:inline-block;width:10px;height:10px;margin-right:4px}
.empty{color:#777}.code{color:#666;font-size:.85em}.key-id{font-family:monospace;font-size:.8em;
word-break:break-all}table.dev{table-layout:fixed;font-size:.9em}.dev th,.dev td{padding:3px 5px}
@media print{body{margin:0;font-size:9pt}th,td{padding:2px 4px}}
"""


def render_html(report: Mapping[str, Any]) -> str:
    """One self-contained page: no script, no external style, font or image. Tables take the page's width
    and wrap their cells (the reason and the comment are never cut)."""
    totals = report["totals"]
    legend = "".join(f'<span class="key"><i style="background:{_COLOURS[n]}"></i>{_LABELS[n]}</span>'
                     for n in OUTCOMES)
    count_rows = "".join(
        f'<tr><td class="rule">{_rule_cell(c["rule"], c["ruleLabel"])}</td>' +
        "".join(f"<td>{_esc(v)}</td>" for v in (c["arm"], c["site"])) +
        "".join(f'<td class="n">{c[k]}</td>' for k in ("shown", "accepted", "overridden", "noFeedback")) +
        "<td>" + "<br>".join(f"{_esc(_reason_words(r))}: {r['count']}" for r in c["overriddenByReason"]) +
        "</td></tr>"
        for c in report["counts"])
    since = f"since {_esc(report['since'])}" if report["since"] else "all recorded cards"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{_esc(report['title'])}</title>
<style>{_REPORT_STYLE}</style></head><body>
<h1>{_esc(report['title'])}</h1>
<p>{since}; dates in {_esc(report['timezone'])}; generated {_esc(report['generatedAt'])}.
Cards shown: {totals['shown']} — accepted {totals['accepted']}, overridden {totals['overridden']},
no feedback {totals['noFeedback']}. Feedback for unknown cards: {report['feedbackForUnknownCards']}.</p>
<h2>Cards per week</h2>
<div>{legend}</div>
{weekly_chart(report['weeks'])}
<h2>Per rule, arm and site</h2>
<table><thead><tr><th>Rule</th><th>Arm</th><th>Site</th><th>Shown</th><th>Accepted</th><th>Overridden</th>
<th>No feedback</th><th>Overridden, by reason</th></tr></thead><tbody>{count_rows}</tbody></table>
<h2>Potential deviations: every arm B warning, by outcome ({len(report['potentialDeviations'])})</h2>
<p>The order's first day and its cycle; most EHRs send no feedback, so a warning signed anyway shows as
"no feedback — outcome unknown": check those orders.</p>
{_deviation_sections(report)}
</body></html>
"""


# --- command line ----------------------------------------------------------------------------------

def _date(raw: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a date like 2026-11-01") from None


def add_parser(commands: Any) -> None:
    """The `report` subcommand, added to the `cds-service` parser's subcommands."""
    parser = commands.add_parser(
        "report", help="the trial team's audit report (cards, feedback, potential deviations)",
        description="Cards shown and what clinicians did with them, per rule, arm and site, and the "
                    "overridden arm B warnings (potential deviations). Reads CDS_DATABASE_URL.")
    parser.add_argument("--since", type=_date, metavar="DATE",
                        help="only cards shown on or after this day (YYYY-MM-DD, in CDS_TIMEZONE)")
    parser.add_argument("--format", choices=FORMATS, default="csv", help="output format (default: csv)")
    parser.add_argument("--out", type=Path, metavar="FILE", help="write to FILE (default: standard output)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Build the report from the store named by CDS_DATABASE_URL and write it."""
    config = Config.from_env()
    try:
        zone = ZoneInfo(config.timezone)
    except (KeyError, ValueError):
        raise ConfigError(f"CDS_TIMEZONE={config.timezone!r} is not a known time zone") from None
    # The published CodeSystem names the rules and override reasons; the service refuses to start
    # without these artifacts, so the report reads the same ones.
    words = Vocabulary.of(shared_knowledge(config.plan_definitions, config.local_valuesets,
                                           base=config.canonical_base))
    engine = open_for_report(config.database_url)
    try:
        report = build_report(engine, zone=zone, since=args.since, words=words)
    except SQLAlchemyError as exc:
        raise _unreadable(exc) from None
    finally:
        engine.dispose()
    text = render(report, args.format)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0



# --- joining the monitoring output (`cds-service monitor --format json`) ----------------------------

# The monitoring findings that are deviations; the cards can only have seen arm B's.
MONITOR_DEVIATIONS = ("arm-b-dex-after-cycle-2", "arm-a-cycle-without-dex")
SEEN = ("overridden", "noFeedback", "accepted", "recordOnly", "cardOnly")
SEEN_WORDS = {"overridden": "warning overridden", "noFeedback": "warning without feedback",
              "accepted": "warning accepted, yet found in the record",
              "recordOnly": "found only in the record",
              "cardOnly": "warning only: not found in the record"}


def read_monitor(path: Path) -> dict[str, Any]:
    """A `cds-service monitor --format json` output; a ConfigError says why it cannot be used."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"--monitor {path}: cannot be read ({exc.strerror})") from None
    except ValueError:
        raise ConfigError(f"--monitor {path}: not JSON (give the output of cds-service monitor --format "
                          "json)") from None
    if not isinstance(document, dict) or not isinstance(document.get("patients"), list):
        raise ConfigError(f"--monitor {path}: not a monitoring output (no \"patients\" list); give the "
                          "output of cds-service monitor --format json")
    return document


def _matches(card: Mapping[str, Any], finding: Mapping[str, Any]) -> bool:
    """A card saw a finding when it warned on one of its orders' first days or on its cycle (an order that
    runs into the next cycle: warned in the cycle before)."""
    cycle = card.get("cycle")
    if card.get("orderDate") in (finding.get("eventStarts") or []):
        return True
    if cycle is None or finding.get("cycle") is None:
        return False
    return finding["cycle"] == cycle + (card.get("rule") == "dex-extends-past-cycle-2")


def join_monitor(report: Mapping[str, Any], monitor: Mapping[str, Any]) -> dict[str, Any]:
    """The report with `deviationSources`: each deviation the record shows, and how the cards saw it.

    A monitoring deviation is matched to the arm B warnings of the same study subject shown for one of
    its orders' first days or its cycle; the strongest outcome tells how it was seen (overridden, then
    without feedback, then accepted — accepted yet in the record: the order went ahead some other way).
    None: found only in the record. Overridden or unanswered warnings no deviation matched are listed as
    "warning only": the record does not show the dexamethasone (not given, or not in the export).
    """
    cards = [d for d in report["potentialDeviations"] if d.get("studySubjectId")]
    used: set[str] = set()
    rows = []
    for patient in monitor.get("patients") or []:
        subject = patient.get("studySubjectId")
        for finding in patient.get("findings") or []:
            if finding.get("code") not in MONITOR_DEVIATIONS:
                continue
            seen = [c for c in cards if c["studySubjectId"] == subject and _matches(c, finding)]
            seen.sort(key=lambda c: DEVIATION_OUTCOMES.index(c["outcome"]))
            used |= {c["cardUuid"] for c in seen}
            rows.append(_source_row(seen[0]["outcome"] if seen else "recordOnly", patient, finding,
                                    seen[0] if seen else None))
    for card in cards:
        if card["cardUuid"] not in used and card["outcome"] != "accepted":
            rows.append(_source_row("cardOnly", {"studySubjectId": card["studySubjectId"], "arm": card["arm"],
                                                 "regimen": card["regimen"], "site": card["site"]},
                                    {"cycle": card["cycle"], "cycleDay": card["cycleDay"],
                                     "day": card["orderDate"]}, card))
    rows.sort(key=lambda r: (SEEN.index(r["seen"]), r["studySubjectId"] or "", r["day"] or ""))
    return {**report, "monitor": {"study": monitor.get("study"), "today": monitor.get("today")},
            "deviationSources": rows, "deviationSourcesBySeen": {s: sum(r["seen"] == s for r in rows)
                                                                 for s in SEEN}}


def _source_row(seen: str, patient: Mapping[str, Any], finding: Mapping[str, Any],
                card: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"seen": seen, "seenLabel": SEEN_WORDS[seen], "studySubjectId": patient.get("studySubjectId"),
            "arm": patient.get("arm"), "regimen": patient.get("regimen"), "site": patient.get("site"),
            "finding": finding.get("code"), "cycle": finding.get("cycle"),
            "cycleDay": finding.get("cycleDay"),
            "day": finding.get("day"), "text": finding.get("text"),
            "cardRule": card["rule"] if card else None, "cardOrderDate": card["orderDate"] if card else None,
            "cardShownOn": card["shownOn"] if card else None, "cardUuid": card["cardUuid"] if card else None,
            "reason": card["reason"] if card else None, "comment": card["comment"] if card else None}


SOURCE_COLUMNS = ("seen", "study_subject_id", "arm", "regimen", "site", "finding", "cycle", "cycle_day",
                  "day", "text", "card_rule", "card_order_date", "card_shown_on", "reason_code",
                  "reason_display", "comment", "card_uuid")


def _source_values(r: Mapping[str, Any]) -> tuple[Any, ...]:
    reason = r["reason"] or {}
    return (r["seenLabel"], r["studySubjectId"], r["arm"], r["regimen"], r["site"], r["finding"], r["cycle"],
            r["cycleDay"], r["day"], r["text"], r["cardRule"], r["cardOrderDate"], r["cardShownOn"],
            reason.get("code"), reason.get("display"), r["comment"], r["cardUuid"])


def _sources_html(report: Mapping[str, Any]) -> str:
    heads = ("Study subject", "Finding", "Cycle", "Day", "Arm", "Site", "What the record shows", "Card",
             "Reason", "Comment")
    parts = [f"<h2>Deviations found in the record, and how the cards saw them "
             f"({len(report['deviationSources'])})</h2>",
             "<p>From <code>cds-service monitor</code> on "
             f"{_esc(report['monitor'].get('today'))}, matched by study subject and the order's day or "
             "cycle.</p>"]
    for seen in SEEN:
        rows = [r for r in report["deviationSources"] if r["seen"] == seen]
        parts.append(f"<h3>{_esc(SEEN_WORDS[seen].capitalize())} ({len(rows)})</h3>")
        if not rows:
            parts.append('<p class="empty">None.</p>')
            continue
        body = "".join(
            "<tr>" + "".join(f"<td>{_esc(v)}</td>" for v in (
                r["studySubjectId"], r["finding"], r["cycle"], r["day"], r["arm"], r["site"], r["text"],
                f"{r['cardRule']} shown {r['cardShownOn']}" if r["cardRule"] else "",
                _reason_words(r["reason"]) if r["seen"] == "overridden" and r["reason"] else "",
                r["comment"])) + "</tr>" for r in rows)
        parts.append(f'<table class="dev"><thead><tr>{"".join(f"<th>{h}</th>" for h in heads)}</tr></thead>'
                     f"<tbody>{body}</tbody></table>")
    return "\n".join(parts) + "\n"


def render_joined(report: Mapping[str, Any], fmt: str) -> str:
    """The report with the monitoring join: json as data, csv a third table, html a last section."""
    if fmt == "json" or "deviationSources" not in report:
        return render(report, fmt)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([])
        writer.writerow(SOURCE_COLUMNS)
        for r in report["deviationSources"]:
            writer.writerow([_cell(v) for v in _source_values(r)])
        return render_csv(report) + out.getvalue()
    page = render(report, fmt)
    return page.replace("</body></html>", _sources_html(report) + "</body></html>")


def run_with_monitor(args: argparse.Namespace) -> int:
    """`report --monitor FILE`: the report built as `run` builds it, joined with a monitoring output."""
    monitor = read_monitor(args.monitor)  # refused before the store is read
    captured = io.StringIO()
    plain = argparse.Namespace(**{**vars(args), "format": "json", "out": None})
    with contextlib.redirect_stdout(captured):
        run(plain)
    text = render_joined(join_monitor(json.loads(captured.getvalue()), monitor), args.format)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
