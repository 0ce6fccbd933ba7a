"""Reading the screening input: a Bundle file, a folder of JSON resources/Bundles, or Bulk FHIR NDJSON."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

NDJSON_SUFFIXES = (".ndjson", ".ndjson.gz", ".jsonl")
JSON_SUFFIXES = (".json",)


class InputError(Exception):
    """Input that cannot be screened (missing, unreadable, not FHIR): the message names the file."""


@dataclass(frozen=True)
class Item:
    """One resource as read; from a Bundle, with its fullUrl and the aliases fullUrl → `Type/id`."""

    raw: dict[str, Any]
    full_url: str | None = None
    aliases: dict[str, str] = field(default_factory=dict)
    line: bytes | None = None  # the NDJSON line it was decoded from


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(NDJSON_SUFFIXES):
        return "ndjson"
    if name.endswith(JSON_SUFFIXES):
        return "json"
    return None


def input_files(path: Path) -> list[Path]:
    """The files to read: PATH itself, or the JSON / NDJSON files in the folder PATH (sorted, one level)."""
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise InputError(f"{path}: not a file or folder")
    try:
        files = sorted(p for p in path.iterdir() if p.is_file() and _kind(p))
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from None
    if not files:
        raise InputError(f"{path}: no .json or .ndjson files in this folder")
    return files


def _open(path: Path) -> tuple[IO[bytes], IO[bytes]]:
    """(the stream to read, the raw file whose position says how far we are)."""
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from None
    if path.name.lower().endswith(".gz"):
        return gzip.GzipFile(fileobj=raw), raw
    return raw, raw


def _not_fhir(path: Path, where: str) -> InputError:
    return InputError(f"{path}: not FHIR JSON ({where} is not a resource with a resourceType)")


def _is_resource(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("resourceType"), str)


@dataclass(frozen=True)
class Hooks:
    """What the reader reports, and which lines it may leave undecoded.

    `line_filter(kind)` is asked once per NDJSON file named after its resource type (a Bulk Data export's
    `Condition.000.ndjson`): None decodes every line; a predicate decodes only the lines it accepts (on the
    raw bytes), the others are only counted with `skipped(kind)`.
    """

    progress: Callable[[int], None]
    malformed: Callable[[str], None]  # told where: `Condition.ndjson line 12`
    line_filter: Callable[[str], Callable[[bytes], bool] | None] = lambda kind: None
    skipped: Callable[[str], None] = lambda kind: None


def _named_after(path: Path, kind: str) -> bool:
    name = path.name
    return name.startswith(kind) and not name[len(kind):len(kind) + 1].isalpha()


def read_ndjson(path: Path, hooks: Hooks) -> Iterator[Item]:
    """One resource per line; a bad first line means the file is not FHIR NDJSON, a later one is counted."""
    stream, raw = _open(path)
    position, first = 0, True
    accept: Callable[[bytes], bool] | None = None
    kind = ""
    try:
        with stream:
            for number, line in enumerate(stream, start=1):
                if number % 256 == 0:  # the position costs a system call: ask now and then
                    now = raw.tell()
                    hooks.progress(now - position)
                    position = now
                if not line.strip():
                    continue
                if accept is not None and not accept(line):
                    hooks.skipped(kind)
                    continue
                try:
                    resource = json.loads(line)
                except ValueError:
                    resource = None
                if not _is_resource(resource):
                    if first:
                        raise _not_fhir(path, f"line {number}")
                    hooks.malformed(f"{path.name} line {number}")
                    continue
                if first and _named_after(path, resource["resourceType"]):
                    kind = resource["resourceType"]
                    accept = hooks.line_filter(kind)
                first = False
                yield Item(resource, line=line)
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
    hooks.progress(path.stat().st_size - position)
    if first:
        raise InputError(f"{path}: no FHIR resource in this file")


def read_json(path: Path, hooks: Hooks) -> Iterator[Item]:
    """A JSON resource or Bundle (read whole: a Bundle is one JSON document)."""
    stream, _ = _open(path)
    try:
        with stream:
            data = json.loads(stream.read())
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from None
    except ValueError:
        raise InputError(f"{path}: not JSON") from None
    hooks.progress(path.stat().st_size)
    if not _is_resource(data):
        raise _not_fhir(path, "the document")
    if data["resourceType"] != "Bundle":
        yield Item(data)
        return
    entries = [e for e in data.get("entry") or [] if isinstance(e, dict) and _is_resource(e.get("resource"))]
    aliases = {}
    for entry in entries:
        resource, full_url = entry["resource"], entry.get("fullUrl")
        if isinstance(full_url, str) and full_url:
            aliases[full_url] = f"{resource['resourceType']}/{resource.get('id') or full_url}"
    for entry in entries:
        full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
        yield Item(entry["resource"], full_url, aliases)


def read_all(files: list[Path], hooks: Hooks) -> Iterator[Item]:
    """Every resource of every input file, one at a time."""
    for path in files:
        if _kind(path) == "ndjson":
            yield from read_ndjson(path, hooks)
        else:
            yield from read_json(path, hooks)


def total_bytes(files: list[Path]) -> int:
    return sum(p.stat().st_size for p in files)
