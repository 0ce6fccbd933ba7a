"""Assembling one PatientRecord per call: draft orders from the context, the prefetch, then FHIR server reads.

Order of sources: `context.draftOrders`/`selections` first, then each prefetch key, then — for every
part that is absent, null or an OperationOutcome, and for the pages of a paged prefetch — searches on
`fhirServer` with the call's token, all at once. Medications given by reference (draft orders and
history) and the ResearchStudy of each ResearchSubject are resolved next: contained, in the
draftOrders Bundle, in the `researchStudy` prefetch, already in the record, else read from the server
(concurrently again).

A part the service needs that cannot be had makes the call a 412 naming every such part and why;
a part it does not need is left out of the record and named in `record.missing`.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

from cachetools import LRUCache
from fhir.resources.R4B.resource import Resource

from cds_service import jsonio
from cds_service.errors import CdsError, operation_outcome
from cds_service.fhir import raw as safe
from cds_service.fhir.client import Deadline, Target
from cds_service.fhir.fetch import FhirGateway, Outcome, Read
from cds_service.fhir.parse import parse_resource
from cds_service.fhir.prefetch import STUDY_KEY, TEMPLATES, server_queries
from cds_service.fhir.record import PatientRecord, Skipped
from cds_service.hooks.request import HookRequest
from cds_service.logs import log_event
from cds_service.security.allowlist import relative_to

log = logging.getLogger(__name__)

# A predicate on a raw resource of a part (`keep("observations", raw)`), applied before validation:
# the knowledge layer passes one built from its value sets so only relevant resources cost parsing.
# It runs on the read threads: it must be a pure function of its arguments.
Keep = Callable[[str, dict[str, Any]], bool]
# Validates one raw resource into its R4B model, or raises ValueError (parse_resource, or a cache of it).
Parse = Callable[[Any], Resource]
# Resources of a part, each as (resourceType, the parsed model or why it does not validate).
Parsed = list[tuple[str, Resource | str]]
# A prefetch value read for a part: why it cannot be used (None: it can), its Parsed, its next page's link.
PrefetchPart = tuple[str | None, Parsed, str | None]
# A PartCache entry: the PrefetchPart and its Filing (None when the value cannot be used).
_Entry = tuple[str | None, Parsed, str | None, "Filing | None"]

# Record part → PatientRecord attribute (the patient part is a single resource).
_LIST_FIELDS = {
    "conditions": "conditions",
    "medicationRequests": "medication_requests",
    "medicationAdministrations": "medication_administrations",
    "medicationStatements": "medication_statements",
    "observations": "observations",
    "procedures": "procedures",
    "researchSubjects": "research_subjects",
    "carePlans": "care_plans",
}
# Types kept when they come along in a part's Bundle (`_include`d or added by the client): what
# references are resolved to. Anything else there (OperationOutcome warnings, …) is not parsed.
REFERENCED_TYPES = frozenset({"Medication", "ResearchStudy"})
# The R4B model classes built at start-up (parse.warm_models).
MODEL_TYPES = (*(t for t, _ in TEMPLATES.values()), *sorted(REFERENCED_TYPES))

# Where the resources of the record's parts name their patient, and what a reference to one looks like.
_PATIENT_FIELDS = ("subject", "patient", "individual")
# Why a resource naming another patient is left out (Skipped.unreadable is False for it alone).
OTHER_PATIENT = "it belongs to another patient than context.patientId"
_PATIENT_REFERENCE = re.compile(r"(?:^|/)Patient/([^/]+)(?:/_history/[^/]+)?$")
_REFERENCE = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(/_history/[A-Za-z0-9\-.]{1,64})?$")
# FHIR issue type per kind of read failure, for the 412's per-part issues.
_ISSUE_CODES = {
    "deadline": "timeout", "unreachable": "transient", "busy": "transient", "refused": "security",
    "not-found": "not-found", "incomplete": "incomplete", "redirect": "security", "invalid": "processing",
    "server": "processing", "absent": "incomplete",
}


class MissingData(CdsError):
    """412: parts the service needs could not be had; one issue per part, with why."""

    def __init__(self, missing: dict[str, tuple[str, str]]) -> None:
        super().__init__(
            412,
            "Data needed for a decision could not be obtained: "
            + "; ".join(f"{part} ({reason})" for part, (reason, _) in missing.items())
            + ". Send it as prefetch, or send a fhirServer (and fhirAuthorization) it can be read from.",
            code="incomplete", expression=tuple(f"prefetch.{part}" for part in missing))
        self.missing = missing

    def outcome(self) -> dict[str, Any]:
        issues = [{"severity": "error", "code": _ISSUE_CODES.get(kind, "incomplete"),
                   "diagnostics": f"{part}: {reason}", "expression": [f"prefetch.{part}"]}
                  for part, (reason, kind) in self.missing.items()]
        return operation_outcome(self.message, code=self.code, expression=self.expression,
                                 extra_issues=issues)


def read_prefetch(value: Any) -> tuple[str | None, list[dict[str, Any]]]:
    """Why a prefetch value cannot be used (absent, null, an OperationOutcome, a Bundle with unreadable
    entries or links), or None if it can; and its resources when it can (the entries are walked once).

    A Bundle with an entry that is not a resource, or whose `link` cannot be read, is not used at all:
    the unreadable entry may be the enrolment or the order that decides, and an unreadable link hides
    whether more pages exist. Like any other gap, the part is then read from `fhirServer`, or named as
    missing (a 412 when the call needs it).
    """
    if value is None:
        return "not prefetched", []
    kind = safe.resource_type(value)
    if kind is None:
        return "prefetch value is not a FHIR resource", []
    if kind == "OperationOutcome":
        return "the client could not prefetch it", []
    if kind != "Bundle":
        return None, [value]
    entries = safe.bundle_entries(value)
    if entries.unreadable:
        count = len(entries.unreadable)
        shown = "; ".join(entries.unreadable[:3]) + ("; …" if count > 3 else "")
        return (f"the prefetch Bundle has {count} unreadable entr{'y' if count == 1 else 'ies'} "
                f"({shown}); a decision is not taken on part of the data"), []
    problem = safe.link_problem(value)
    if problem is not None:
        return f"the prefetch Bundle's {problem}: whether it has more pages cannot be told", []
    # Some clients wrap their error in a Bundle: one with only error OperationOutcomes is no data.
    inside = entries.resources
    if inside and all(safe.resource_type(r) == "OperationOutcome" for r in inside) and any(
            safe.text(i, "severity") in ("error", "fatal") for r in inside for i in safe.objects(r, "issue")):
        return "the client could not prefetch it", []
    return None, inside


def prefetch_gap(value: Any) -> str | None:
    """Why a prefetch value cannot be used, or None if it can (`read_prefetch`)."""
    return read_prefetch(value)[0]


def draft_record(request: HookRequest, parse: Parse = parse_resource) -> PatientRecord:
    """The record's first part, read from the call's context alone: its draft orders (and the Medications
    that come with them). `assemble_record` completes it."""
    record = PatientRecord(patient_id=request.patient_id, selections=request.selections)
    _add_draft_orders(record, request.draft_orders, parse)
    return record


def whole_prefetch(request: HookRequest, part: str) -> list[dict[str, Any]] | None:
    """The resources of a part when the prefetch holds the whole of it (usable and unpaged), else None."""
    value = request.prefetch.get(part)
    gap, resources = read_prefetch(value)
    if part not in TEMPLATES or gap is not None or safe.next_link(value) is not None:
        return None
    return resources


def prefetched_none(request: HookRequest, part: str) -> bool:
    """Whether the prefetch holds the whole of a part and it has no resource of the part's type: a usable,
    unpaged Bundle whose entries are all of other types (or none), as a search that found nothing."""
    if safe.resource_type(request.prefetch.get(part)) != "Bundle":
        return False
    resources = whole_prefetch(request, part)
    return resources is not None and all(safe.resource_type(raw) != TEMPLATES[part][0] for raw in resources)


def add_prefetched(record: PatientRecord, request: HookRequest, part: str, keep: Keep | None = None,
                   parse: Parse = parse_resource) -> bool:
    """File a part into the record when the prefetch holds the whole of it (`whole_prefetch`); False, and
    the record untouched, when it does not."""
    resources = whole_prefetch(request, part)
    if resources is None:
        return False
    add_part(record, part, resources, keep, parse)
    return True


def assemble_record(request: HookRequest, needs: Iterable[str], *,
                    wants: Iterable[str] | Mapping[str, str] | None = None,
                    fhir: FhirGateway | None = None, keep: Keep | None = None,
                    deadline: Deadline | None = None, parse: Parse = parse_resource,
                    record: PatientRecord | None = None, parts: PartCache | None = None) -> PatientRecord:
    """The record of one call (see the module docstring); 403 for a disallowed fhirServer, 412 for a gap.

    `needs`: parts without which the call is a 412. `wants`: parts read from the server when not
    prefetched (the service's prefetch, whose templates are the searches made; default: `needs`);
    other parts are not read, and are named in `record.missing` so that no rule takes their absence
    for "none". `fhir`: the process's
    gateway; without one nothing is read. `keep`: a predicate on raw resources of a part (default:
    keep all). `deadline`: defaults to CDS_CALL_DEADLINE_MS from now. `parse`: how a raw resource is
    validated (the runtime passes its ParseCache's, so a history sent again is not validated again).
    `record`: the call's `draft_record`, when it was made already. `parts`: the process's PartCache, so
    a prefetched part sent again is not selected again.
    """
    needs = tuple(needs)
    wanted = set(needs if wants is None else wants) | set(needs)
    if fhir is not None:
        fhir.check_server(request.fhir_server)
    record = record if record is not None else draft_record(request, parse)
    _add_studies(record, request.prefetch.get(STUDY_KEY), parse)
    target = None
    if fhir is not None and request.fhir_server:
        token = request.fhir_authorization.access_token if request.fhir_authorization else None
        target = Target(request.fhir_server, token)
        deadline = deadline or fhir.deadline()
    kinds: dict[str, str] = {}
    reads: list[Read] = []
    read = _read_filing if parts is None else parts.read_filing
    for part in TEMPLATES:
        gap, filed, link = read(part, request.prefetch.get(part), keep, record.patient_id, parse,
                                text=request.prefetch_texts.get(part))
        if filed is not None:
            file_filing(record, filed)
            record.sources[part] = "prefetch"
            if link is None:
                continue
            if target is None:
                _drop_part(record, part, "the prefetch is paged and the request has no fhirServer to read "
                           "the other pages from", kinds, "absent")
            else:
                reads.append(Read(part, (urljoin(target.base + "/", link),), continuation=True))
        elif part not in wanted:
            record.missing[part] = "not asked for by this service"
        elif target is None:
            record.missing[part] = f"{gap}, and the request has no fhirServer to read it from"
            kinds[part] = "absent"
        else:
            template = wants.get(part) if isinstance(wants, Mapping) else None
            reads.append(Read(part, server_queries(part, request.patient_id, template),
                              search=part != "patient"))

    if target is not None and fhir is not None and deadline is not None:
        attempted: set[str] = set()
        # Round 1: the missing parts, and the medications of the draft orders (known already).
        reads += _reference_reads(record, record.draft_orders, target, attempted)
        _apply(record, fhir.fetch(target, reads, deadline, _prepare(keep, record.patient_id, parse)), kinds)
        # Round 2: what the parts just read refer to and the server did not `_include`.
        history = [*record.medication_requests, *record.medication_administrations,
                   *record.medication_statements, *record.research_subjects]
        more = _reference_reads(record, [*record.draft_orders, *history], target, attempted)
        if more:
            _apply(record, fhir.fetch(target, more, deadline, _prepare(keep, record.patient_id, parse)),
                   kinds)
    else:
        _note_unreadable_references(record)

    if record.patient is None and "patient" not in record.missing:
        # Prefetched or read, but no readable Patient of this patient came of it.
        _drop_part(record, "patient", "no valid Patient resource for context.patientId was in the answer",
                   kinds, "invalid")
    if record.fhir_requests or kinds or record.unresolved:
        log_event(log, "record assembled", fhirRequests=record.fhir_requests,
                  fhirCacheHits=record.fhir_cache_hits, missing=sorted(record.missing),
                  unresolved=len(record.unresolved), skipped=len(record.skipped))
    unmet = {part: (record.missing[part], kinds.get(part, "absent"))
             for part in needs if part in record.missing}
    if unmet:
        raise MissingData(unmet)
    return record


def add_part(record: PatientRecord, part: str, resources: Iterable[dict[str, Any]],
             keep: Keep | None = None, parse: Parse = parse_resource) -> None:
    """Select on the raw JSON, then parse and file the resources of one record part."""
    file_part(record, part, select_and_parse(part, resources, keep, record.patient_id, parse))


def _read_filing(part: str, value: Any, keep: Keep | None = None, patient_id: str | None = None,
                 parse: Parse = parse_resource, *, text: bytes | None = None
                 ) -> tuple[str | None, Filing | None, str | None]:
    gap, _, link, filed = _with_filing(part, read_part(part, value, keep, patient_id, parse))
    return gap, filed, link


def read_part(part: str, value: Any, keep: Keep | None = None, patient_id: str | None = None,
              parse: Parse = parse_resource) -> PrefetchPart:
    """A prefetch value read for one part: why it cannot be used (`read_prefetch`; None when it can), its
    resources selected and parsed (`select_and_parse`), and the link to its next page, if any."""
    gap, resources = read_prefetch(value)
    if gap is not None:
        return gap, [], None
    return None, select_and_parse(part, resources, keep, patient_id, parse), safe.next_link(value)


def select_and_parse(part: str, resources: Iterable[dict[str, Any]], keep: Keep | None = None,
                     patient_id: str | None = None, parse: Parse = parse_resource) -> Parsed:
    """The resources of a part worth validating, validated; touches no record, so reads run it on
    their own threads as soon as their answer is in, while slower reads are still on the wire.

    Resources of the part's type pass `keep`; referenced types (Medication, ResearchStudy) are kept
    for resolving references; anything else is never validated. A resource that does not validate
    comes back as the reason (its type and where, never its content). So does one that names
    another patient than `patient_id` (a server that ignored the `patient` parameter, a Patient
    read that answered someone else): one patient's data never enters another's record.
    """
    expected = TEMPLATES[part][0] if part in TEMPLATES else part.split("/", maxsplit=1)[0]
    selecting = keep is not None and part in _LIST_FIELDS
    parsed: Parsed = []
    for raw in resources:
        # safe.resource_type, written out: this loop sees every resource of a history.
        kind = raw.get("resourceType") if isinstance(raw, dict) else None
        if not isinstance(kind, str) or not kind:
            continue  # not a FHIR resource at all (prefetch_gap and the client refuse those first)
        if kind == expected:
            if selecting and not keep(part, raw):
                continue
            if patient_id is not None and _of_another_patient(part, raw, patient_id):
                parsed.append((str(kind), OTHER_PATIENT))
                continue
        elif kind not in REFERENCED_TYPES:
            continue
        try:
            parsed.append((str(kind), parse(raw)))
        except ValueError as exc:
            parsed.append((str(kind)[:40], str(exc)))
    return parsed


# What PartCache may hold, in bytes of the exact texts it keys on: some 270 patients' 100-resource
# histories. The models it keeps alive take about 13 times the JSON of the resources kept (a fifth of a
# history's, typically; all of it at most): about 30 MB a process then, 110 MB at most.
PART_CACHE_BYTES = 8 * 1024 * 1024


class PartCache:
    """`read_part`'s answers by the exact content of a prefetch value: an EHR sends a patient's history
    again with every order-select, order-sign and patient-view, and reading it again (its Bundle checked,
    each resource looked at, the kept ones digested for the parse cache) was a fifth of an arm B call
    (bench/README.md).

    The key is the part, the patient, the `keep` predicate (by identity, held by the entry) and the value's
    text: as the client sent it when the body was read so (hooks/body.py), else as `jsonio.exact_text`
    writes it. Only equal content shares an entry, and content it cannot write exactly is read each time.
    The answer is what `read_part` gives for that content (its models are never changed, as the parse
    cache's). Bounded by the bytes of the keys it holds (PART_CACHE_BYTES).
    """

    def __init__(self, max_bytes: int = PART_CACHE_BYTES) -> None:
        self._entries: LRUCache[tuple[Any, ...], tuple[int, Keep | None, _Entry]] = LRUCache(
            maxsize=max_bytes, getsizeof=lambda entry: entry[0])
        self._max_bytes = max_bytes
        self._lock = threading.Lock()

    def read(self, part: str, value: Any, keep: Keep | None = None, patient_id: str | None = None,
             parse: Parse = parse_resource, *, text: bytes | None = None) -> PrefetchPart:
        """`read_part(part, value, keep, patient_id, parse)`, once per distinct content (`text`: as
        `read_filing`)."""
        gap, parsed, link, _ = self._entry(part, value, keep, patient_id, parse, sent=text)
        return gap, list(parsed), link

    def read_filing(self, part: str, value: Any, keep: Keep | None = None, patient_id: str | None = None,
                    parse: Parse = parse_resource, *, text: bytes | None = None
                    ) -> tuple[str | None, Filing | None, str | None]:
        """`read`, with its resources as `filing` files them (None when the value cannot be used). `text`:
        the value's exact text as sent (hooks/body.py), when known: the key, instead of writing it out."""
        gap, _, link, filed = self._entry(part, value, keep, patient_id, parse, sent=text)
        return gap, filed, link

    def _entry(self, part: str, value: Any, keep: Keep | None, patient_id: str | None,
               parse: Parse, *, sent: bytes | None = None) -> _Entry:
        # The text sent decodes to the value and only an equal text does: exact, nulls and all. A text
        # written out here is exact only without a null (jsonio.is_exact): only such are stored, so the
        # lookup needs no check for null and a hit skips it. An equal text of either kind is the same value.
        text = sent if sent is not None else jsonio.json_text(value)
        if text is None or len(text) > self._max_bytes:
            return _with_filing(part, read_part(part, value, keep, patient_id, parse))
        key = (part, patient_id, id(keep), text)
        with self._lock:
            found = self._entries.get(key)
        if found is not None:
            return found[2]
        entry = _with_filing(part, read_part(part, value, keep, patient_id, parse))
        if sent is not None or jsonio.is_exact(text):
            with self._lock:
                self._entries[key] = (len(text), keep, entry)
        return entry


def _with_filing(part: str, read: PrefetchPart) -> _Entry:
    gap, parsed, link = read
    return gap, parsed, link, filing(part, parsed) if gap is None else None


def _of_another_patient(part: str, raw: dict[str, Any], patient_id: str) -> bool:
    if part == "patient":
        return raw.get("id") not in (None, patient_id)
    for field_name in _PATIENT_FIELDS:
        reference = safe.reference(raw, field_name)
        if reference is not None:
            match = _PATIENT_REFERENCE.search(reference)
            if match and match.group(1) != patient_id:
                return True
    return False


@dataclass(frozen=True, slots=True)
class Filing:
    """Where a part's parsed resources go in a record (`filing`), worked out once: a cached part is filed
    into every call's record with a list extend and a dict update (`file_filing`)."""

    field: str | None  # the record's list for the part's type; None for the patient part
    items: tuple[Resource, ...]  # the part's resources of its type, in order
    referenced: tuple[tuple[str, Resource], ...]  # `Type/id` → resource, in order (a later one wins)
    skipped: tuple[tuple[str, str], ...]  # (resourceType, why) of each resource left out


def filing(part: str, parsed: Parsed) -> Filing:
    """How `file_part` files parsed resources of a part: its type into the part's list (the patient part:
    the record's Patient), other types only reachable by reference, each unreadable one skipped."""
    expected = TEMPLATES[part][0]
    items, referenced, skipped = [], [], []
    for kind, item in parsed:
        if isinstance(item, str):
            skipped.append((kind, item))
            continue
        if kind == expected:
            items.append(item)
            if part == "patient":
                continue
        key = _reference_key(item)
        if key is not None:
            referenced.append((key, item))
    return Filing(None if part == "patient" else _LIST_FIELDS[part], tuple(items), tuple(referenced),
                  tuple(skipped))


def file_filing(record: PatientRecord, filed: Filing) -> None:
    """File a part's resources into the record as `filed` says (each skip noted and logged, per call)."""
    for kind, reason in filed.skipped:
        _skip(record, kind, reason)
    if filed.field is None:
        if filed.items:
            record.patient = filed.items[-1]
    else:
        getattr(record, filed.field).extend(filed.items)
    record.referenced.update(filed.referenced)


def file_part(record: PatientRecord, part: str, parsed: Parsed) -> None:
    """File parsed resources of a part into the record; other types become reachable by reference."""
    file_filing(record, filing(part, parsed))


def remember(record: PatientRecord, resource: Resource) -> None:
    """Make a resource reachable by reference (`Type/id`)."""
    key = _reference_key(resource)
    if key is not None:
        record.referenced[key] = resource


def _reference_key(resource: Resource) -> str | None:
    """`Type/id`, what a reference to the resource is resolved by; None without an id."""
    return f"{resource.get_resource_type()}/{resource.id}" if getattr(resource, "id", None) else None


def _prepare(keep: Keep | None, patient_id: str,
             parse: Parse) -> Callable[[Read, list[dict[str, Any]]], Parsed]:
    def prepare(read: Read, resources: list[dict[str, Any]]) -> Parsed:
        return select_and_parse(read.name, resources, keep, patient_id, parse)
    return prepare


def _apply(record: PatientRecord, outcomes: dict[str, Outcome], kinds: dict[str, str]) -> None:
    for name, outcome in outcomes.items():
        record.fhir_requests += outcome.requests
        record.fhir_cache_hits += int(outcome.cached)
        if name in TEMPLATES:
            if outcome.error is not None:
                _drop_part(record, name, outcome.error.reason, kinds, outcome.error.kind)
                continue
            file_part(record, name, outcome.prepared)
            record.sources[name] = "prefetch+fhirServer" if name in record.sources else "fhirServer"
            continue
        if outcome.error is not None:
            record.unresolved[name] = outcome.error.reason
            continue
        found = [(kind, item) for kind, item in outcome.prepared if kind == name.split("/")[0]]
        if not found:
            record.unresolved[name] = "the FHIR server answered another resource type"
        for kind, item in found:
            if isinstance(item, str):
                _skip(record, kind, item)
                record.unresolved[name] = "the resource read does not validate"
            else:
                record.referenced[name] = item
                remember(record, item)


def _drop_part(record: PatientRecord, part: str, reason: str, kinds: dict[str, str], kind: str) -> None:
    """A part that could not be had completely holds no data: no decision on part of it."""
    if part == "patient":
        record.patient = None
    else:
        getattr(record, _LIST_FIELDS[part]).clear()
    record.sources.pop(part, None)
    record.missing[part] = reason
    kinds[part] = kind


def _outgoing(resource: Resource) -> list[tuple[str, str]]:
    """(reference, expected type) of what a resource points to that the record resolves."""
    # ResearchSubject, the type here without `medicationReference`, is told first: getattr on a field a
    # model does not have costs pydantic an exception (2.5 µs a resource).
    if resource.get_resource_type() == "ResearchSubject":
        study = resource.study
        return [(study.reference, "ResearchStudy")] if study is not None and study.reference else []
    medication = getattr(resource, "medicationReference", None)
    return [(medication.reference, "Medication")] if medication is not None and medication.reference else []


def _reference_reads(record: PatientRecord, resources: Iterable[Resource], target: Target,
                     attempted: set[str]) -> list[Read]:
    reads = []
    for resource in resources:
        for reference, expected in _outgoing(resource):
            if record.resolve(reference, within=resource) is not None or reference in record.unresolved:
                continue
            relative, why = _readable(reference, expected, target)
            if relative is None:
                record.unresolved[reference] = why
            elif relative not in attempted:
                attempted.add(relative)
                reads.append(Read(relative, (relative,), search=False))
    return reads


def _readable(reference: str, expected: str, target: Target) -> tuple[str | None, str]:
    """The relative read (`Medication/12`) for a reference, or None and why it is not read."""
    if reference.startswith("#"):
        return None, "the contained resource it names is missing"
    candidate: str | None = reference
    if "://" in reference:
        candidate = relative_to(reference, target.base)
        if candidate is None:
            return None, "it points to another server than fhirServer; not read"
    match = _REFERENCE.match(candidate)
    if match is None or not match.group(2).strip("."):
        # `Medication/..` fits FHIR's id pattern but is a path segment: read, it would climb the URL.
        return None, "not a Type/id reference the record could resolve"
    if match.group(1) != expected:
        return None, f"it refers to a {match.group(1)}, not a {expected}"
    return f"{match.group(1)}/{match.group(2)}", ""


def _note_unreadable_references(record: PatientRecord) -> None:
    """Without a server to read from, unresolved references are noted (the call goes on)."""
    for resource in [*record.draft_orders, *record.medication_requests, *record.medication_administrations,
                     *record.medication_statements, *record.research_subjects]:
        for reference, _ in _outgoing(resource):
            if record.resolve(reference, within=resource) is None:
                record.unresolved.setdefault(reference,
                                             "not in the request, and no fhirServer to read it from")


def _skip(record: PatientRecord, kind: str, reason: str) -> None:
    record.skipped.append(Skipped(kind, reason, unreadable=reason != OTHER_PATIENT))
    log_event(log, "resource skipped", logging.WARNING, resourceType=kind, reason=reason)


def _add_studies(record: PatientRecord, value: Any, parse: Parse = parse_resource) -> None:
    """The study key's ResearchStudies (none, one or several) resolve the ResearchSubjects' references."""
    gap, resources = read_prefetch(value)
    if gap is not None:
        return  # not prefetched: the study is read by its reference, as before
    for raw in resources:
        if safe.resource_type(raw) != "ResearchStudy":
            continue
        try:
            remember(record, parse(raw))
        except ValueError as exc:
            _skip(record, "ResearchStudy", str(exc))


# Request types whose R4 `intent` is required; a draft being written is an order.
_INTENT_TYPES = frozenset({"MedicationRequest", "ServiceRequest", "NutritionOrder", "DeviceRequest"})


def _with_intent(raw: dict[str, Any]) -> dict[str, Any]:
    """A draft request without `intent` (the CDS Hooks Sandbox writes them so) as the order it is being
    written as: R4 requires the element, and refusing the draft would hide its drug from the rules."""
    if safe.resource_type(raw) in _INTENT_TYPES and "intent" not in raw:
        return {**raw, "intent": "order"}
    return raw


def _add_draft_orders(record: PatientRecord, bundle: Any, parse: Parse = parse_resource) -> None:
    # hooks/request.py has refused entries that are not {"resource": {…}}; a resource whose type cannot
    # be told is kept raw as unreadable, so a rule can still say it could not verify it.
    for entry in safe.objects(bundle, "entry"):
        raw = safe.obj(entry, "resource")
        if raw is None:
            continue
        try:
            resource = parse(_with_intent(raw))
        except ValueError as exc:
            record.unreadable_orders.append(raw)
            log_event(log, "draft order unreadable", logging.WARNING,
                      resourceType=(safe.resource_type(raw) or "unknown")[:40], reason=str(exc))
            continue
        if resource.get_resource_type() == "Medication":
            remember(record, resource)
        else:
            record.draft_orders.append(resource)
            remember(record, resource)
        full_url = safe.text(entry, "fullUrl")
        if full_url is not None:
            record.referenced[full_url] = resource
