"""The frame of the trial team's export commands (screen, monitor): the input and date checked before the
knowledge is loaded, the output written whole or not at all, warnings and a summary line on stderr."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from contextlib import nullcontext
from datetime import date, datetime
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from cds_service.config import Config
from cds_service.knowledge.model import Knowledge, load_knowledge
from cds_service.logs import log_event
from cds_service.screen.passes import PassSummary
from cds_service.screen.progress import Progress
from cds_service.screen.sources import InputError, input_files

log = logging.getLogger(__name__)

# What a command does once its input is known readable: (path, knowledge, today, out, progress) → summary.
Work = Callable[[Path, Knowledge, date, TextIO, Progress], PassSummary]


def run_export(name: str, args: argparse.Namespace, config: Config, work: Work) -> int:
    """Run `work` over `args.path` into `args.out` (or stdout): exit 0, or 2 with a one-line message."""
    zone = ZoneInfo(config.timezone)
    try:
        today = date.fromisoformat(args.today) if args.today else datetime.now(zone).date()
        input_files(Path(args.path))  # bad input is refused before the knowledge is loaded
    except ValueError:
        return _fail(name, f"--today {args.today!r} is not a date (YYYY-MM-DD)")
    except InputError as exc:
        return _fail(name, str(exc))
    knowledge = load_knowledge(config.plan_definitions, config.local_valuesets, base=config.canonical_base)
    target = Path(args.out) if args.out else None
    partial = target.with_name(target.name + ".partial") if target else None
    try:
        with partial.open("w", encoding="utf-8", newline="") if partial else nullcontext(sys.stdout) as out:
            summary = work(Path(args.path), knowledge, today, out, Progress(sys.stderr))
    except InputError as exc:
        _discard(partial)
        return _fail(name, str(exc))
    except OSError as exc:
        _discard(partial)
        return _fail(name, f"{exc.filename or args.out}: cannot be written ({exc.strerror})")
    if partial and target:
        os.replace(partial, target)  # the output appears complete or not at all
    for warning in summary.warnings():
        print(f"cds-service {name}: warning: {warning}", file=sys.stderr)
    print(f"cds-service {name}: {summary.describe()}", file=sys.stderr)
    log_event(log, f"{name} finished", **summary.log_fields())
    return 0


def _fail(name: str, message: str) -> int:
    print(f"cds-service {name}: {message}", file=sys.stderr)
    return 2


def _discard(path: Path | None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)
