"""Code sets from the shipped ValueSets, CodeSystem and NamingSystems: what "is dexamethasone" means.

Expansion is done offline, at start-up, from what the artifacts say: explicit concepts, `is-a` filters on code
systems whose hierarchy is the code's prefix (ICD-10 families, ATC), `regex` filters, included ValueSets and
excludes. Concepts of the project's own CodeSystem bring their designations along: those are the names used to
recognise a drug or a route from text when no code matches.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cds_service.errors import ConfigError
from cds_service.knowledge.artifacts import Artifacts

ORDINAL_EXT = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
# Code systems whose hierarchy is spelled by the code's prefix, so `is-a` can be evaluated offline.
# A filter on any other system is refused at start-up rather than silently matching too little.
PREFIX_HIERARCHIES = frozenset({
    "http://hl7.org/fhir/sid/icd-10", "http://hl7.org/fhir/sid/icd-10-cm", "http://www.whocc.no/atc",
})
_ICD_SYSTEMS = frozenset({"http://hl7.org/fhir/sid/icd-10", "http://hl7.org/fhir/sid/icd-10-cm"})


_UNSEEN = object()
_TEXT_MEMO_SIZE = 8192


@dataclass(frozen=True)
class Match:
    """Why something was recognised: the coding or the words that matched (for the card's evidence)."""

    how: str  # "code" or "text"
    system: str | None = None
    code: str | None = None
    text: str | None = None

    def describe(self) -> str:
        if self.how == "code":
            return f"code {self.code} ({self.system})"
        return f'name "{self.text}"'


@dataclass
class CodeSet:
    """One expanded ValueSet: codes by normalised system, is-a prefixes, regexes, excludes and text names."""

    key: str
    url: str
    title: str
    codes: set[tuple[str, str]] = field(default_factory=set)
    prefixes: set[tuple[str, str]] = field(default_factory=set)
    patterns: list[tuple[str, re.Pattern[str]]] = field(default_factory=list)
    excluded_prefixes: set[tuple[str, str]] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    ordinals: dict[tuple[str, str], float] = field(default_factory=dict)
    _names_re: re.Pattern[str] | None = field(default=None, repr=False)
    _systems: Mapping[str, str] = field(default_factory=dict, repr=False)
    # Texts already searched (a medication list repeats the same few names in every call); emptied when
    # the names change (`finish`). Bounded: past the size, texts are searched each time.
    _text_matches: dict[str, Match | None] = field(default_factory=dict, repr=False, compare=False)
    # Codings already looked up, the same way (an order's route and product codes come back in every call).
    _code_matches: dict[tuple[str, str], bool] = field(default_factory=dict, repr=False, compare=False)

    def has_code(self, system: str | None, code: str | None) -> bool:
        """Whether a coding is in the set (system aliases, ICD dots and padding are normalised)."""
        if not isinstance(system, str) or not isinstance(code, str) or not system or not code:
            return False
        found = self._code_matches.get((system, code))
        if found is None:
            found = self._has_code(system, code)
            if len(self._code_matches) < _TEXT_MEMO_SIZE:
                self._code_matches[system, code] = found
        return found

    def _has_code(self, system: str, code: str) -> bool:
        system = self._systems.get(system.strip().rstrip("/"), system.strip().rstrip("/"))
        code = normalise_code(system, code)
        if any(system == s and code.startswith(p) for s, p in self.excluded_prefixes):
            return False
        if (system, code) in self.codes:
            return True
        if any(system == s and code.startswith(p) for s, p in self.prefixes):
            return True
        # A regex applies to the code as its code system writes it (ICD-10 with its dot).
        written = _with_icd_dot(code) if system in _ICD_SYSTEMS else code
        return any(system == s and pattern.fullmatch(written) for s, pattern in self.patterns)

    def match_codings(self, codings: Iterable[Any]) -> Match | None:
        """The first coding (R4B model or dict) in the set."""
        for coding in codings or ():
            system, code = _get(coding, "system"), _get(coding, "code")
            if self.has_code(system, code):
                return Match("code", system=system, code=str(code).strip())
        return None

    def match_text(self, *texts: str | None) -> Match | None:
        """The first whole-word, case-insensitive occurrence of one of the set's names in the texts."""
        if self._names_re is None:
            return None
        for text in texts:
            if isinstance(text, str) and text:
                found = self._text_matches.get(text, _UNSEEN)
                if found is _UNSEEN:
                    hit = self._names_re.search(text)
                    found = Match("text", text=hit.group(0)) if hit else None
                    if len(self._text_matches) < _TEXT_MEMO_SIZE:
                        self._text_matches[text] = found
                if found is not None:
                    return found
        return None

    def match_concept(self, concept: Any) -> Match | None:
        """A CodeableConcept (model or dict): by code first, then by its text and displays."""
        if concept is None:
            return None
        codings = _get(concept, "coding") or []
        return self.match_codings(codings) or self.match_text(
            _get(concept, "text"), *(_get(c, "display") for c in codings))

    def canonical_system(self, system: str | None) -> str | None:
        """A coding's system as the sets spell it (NamingSystem aliases resolved), None when absent."""
        if not isinstance(system, str) or not system.strip():
            return None
        bare = system.strip().rstrip("/")
        return self._systems.get(bare, bare)

    @property
    def code_systems(self) -> frozenset[str]:
        """The code systems this set has codes, hierarchies or patterns in."""
        return frozenset(s for s, _ in (*self.codes, *self.prefixes, *self.patterns))

    def ordinal(self, system: str | None, code: str | None) -> float | None:
        """The ordinalValue of a coded answer (e.g. the ECOG score of a LOINC answer), if any."""
        if not isinstance(system, str) or not isinstance(code, str) or not system or not code:
            return None
        system = self._systems.get(system.strip().rstrip("/"), system.strip().rstrip("/"))
        return self.ordinals.get((system, normalise_code(system, code)))

    @classmethod
    def union(cls, key: str, sets: Iterable[CodeSet]) -> CodeSet:
        """One set matching what any of `sets` matches (one lookup instead of one per set).

        Only for sets without excludes: an exclude of one set must not hide the codes of another.
        """
        sets = list(sets)
        if any(s.excluded_prefixes for s in sets):
            raise ValueError(f"cannot merge value sets with excludes into {key}")
        combined = cls(key=key, url="", title=" or ".join(s.title for s in sets))
        for part in sets:
            combined.codes |= part.codes
            combined.prefixes |= part.prefixes
            combined.patterns += part.patterns
            combined.names |= part.names
            combined.ordinals.update(part.ordinals)
        combined.finish(sets[0]._systems if sets else {})
        return combined

    def finish(self, systems: Mapping[str, str]) -> None:
        self._systems = systems
        self._text_matches = {}
        self._code_matches = {}
        if self.names:
            words = sorted(self.names, key=len, reverse=True)
            self._names_re = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(w) for w in words) + r")(?!\w)",
                                        re.IGNORECASE)


@dataclass(frozen=True)
class WordHit:
    """One term found in a text: which set it belongs to, and the words as written."""

    label: str
    text: str
    start: int
    end: int


class WordMatcher:
    """The terms of several sets matched together, longest first, without splitting compound words.

    A hyphen joins words here ("sous-cutanée", "intra-veineuse"), so a term never matches the tail or head
    of a hyphenated compound; where terms of two sets overlap, the longest wins ("voie sous cutanée" is
    subcutaneous, not "cutanée").
    """

    def __init__(self, sets: Mapping[str, CodeSet]) -> None:
        self._label: dict[str, str] = {}
        for label, code_set in sets.items():
            for name in code_set.names:
                self._label.setdefault(name.casefold(), label)
        words = sorted(self._label, key=len, reverse=True)
        alternatives = "|".join(re.escape(w) for w in words) or r"(?!x)x"
        # A lookahead finds a term at every position, overlapping ones included; the longest are kept below.
        self._re = re.compile(rf"(?=(?<![\w-])({alternatives})(?![\w-]))", re.IGNORECASE)
        # Texts already read (routes and forms repeat across orders and calls); bounded like CodeSet's.
        self._found: dict[str, tuple[WordHit, ...]] = {}

    def find(self, text: str | None) -> list[WordHit]:
        """Every term in the text, longest first where they overlap, in the order they occur."""
        if not isinstance(text, str) or not text:
            return []
        known = self._found.get(text)
        if known is None:
            known = tuple(self._find(text))
            if len(self._found) < _TEXT_MEMO_SIZE:
                self._found[text] = known
        return list(known)

    def _find(self, text: str) -> list[WordHit]:
        found = [(m.start(1), m.end(1)) for m in self._re.finditer(text)]
        kept: list[tuple[int, int]] = []
        for start, end in sorted(found, key=lambda span: span[0] - span[1]):
            if all(end <= s or start >= e for s, e in kept):
                kept.append((start, end))
        hits = [(self._label.get(text[s:e].casefold()), s, e) for s, e in sorted(kept)]
        return [WordHit(label, text[s:e], s, e) for label, s, e in hits if label is not None]


def _get(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else getattr(value, key, None)


def normalise_code(system: str, code: str) -> str:
    """Codes as compared: trimmed (Epic pads them); ICD-10 codes upper-case without their dot."""
    code = str(code).strip()
    if system in _ICD_SYSTEMS:
        return code.upper().replace(".", "")
    return code


def _with_icd_dot(code: str) -> str:
    return f"{code[:3]}.{code[3:]}" if len(code) > 3 else code


@dataclass(frozen=True)
class Terminology:
    """Every code set by ValueSet id, the aliases of each code system, and the project's CodeSystem."""

    sets: Mapping[str, CodeSet]
    systems: Mapping[str, str]
    codesystem: Mapping[str, Any]
    _matchers: dict[tuple[str, ...], WordMatcher] = field(default_factory=dict, compare=False, repr=False)

    def __getitem__(self, key: str) -> CodeSet:
        return self.sets[key]

    def concept(self, code: str) -> dict[str, Any]:
        """A concept of the project's CodeSystem (rule ids, override reasons, arms, regimens)."""
        found = _find_concept(self.codesystem.get("concept") or [], code)
        if found is None:
            raise ConfigError(f"CodeSystem {self.codesystem.get('url')} has no concept {code!r}")
        return found

    def children(self, group: str) -> list[dict[str, Any]]:
        return list(self.concept(group).get("concept") or [])

    def words(self, *keys: str) -> WordMatcher:
        """One matcher over the names of several sets (e.g. the local and systemic route words)."""
        if keys not in self._matchers:
            self._matchers[keys] = WordMatcher({key: self.sets[key] for key in keys})
        return self._matchers[keys]


def _find_concept(concepts: list[dict[str, Any]], code: str) -> dict[str, Any] | None:
    for concept in concepts:
        if concept.get("code") == code:
            return concept
        found = _find_concept(concept.get("concept") or [], code)
        if found:
            return found
    return None


def system_aliases(artifacts: Artifacts) -> dict[str, str]:
    """Every identifier of a code system (URI, OID, urn:oid) → its preferred URI, from the NamingSystems."""
    aliases: dict[str, str] = {}
    for naming in artifacts.of_type("NamingSystem"):
        ids = naming.get("uniqueId") or []
        preferred = next((u["value"] for u in ids if u.get("preferred") and u.get("type") == "uri"), None)
        if preferred is None:
            raise ConfigError(f"NamingSystem/{naming['id']}: no preferred uri")
        for unique in ids:
            aliases[unique["value"].rstrip("/")] = preferred
    return aliases


def read_local_valuesets(path: Path | None) -> list[dict[str, Any]]:
    """The site's extra ValueSets (CDS_LOCAL_VALUESETS): one ValueSet or a Bundle of them."""
    if path is None:
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"CDS_LOCAL_VALUESETS: {path} is not readable JSON ({exc})") from None
    if isinstance(data, dict) and data.get("resourceType") == "Bundle":
        items = [e.get("resource") for e in data.get("entry") or [] if isinstance(e, dict)]
    else:
        items = [data]
    for item in items:
        if not isinstance(item, dict) or item.get("resourceType") != "ValueSet" or not item.get("url"):
            raise ConfigError(f"CDS_LOCAL_VALUESETS: {path} must hold ValueSets with a url")
    return items


def build_terminology(artifacts: Artifacts, local: list[dict[str, Any]] | None = None) -> Terminology:
    """Expand every shipped ValueSet, with the site's local additions merged into the set of the same url."""
    systems = system_aliases(artifacts)
    codesystems = artifacts.of_type("CodeSystem")
    if len(codesystems) != 1:
        raise ConfigError(f"expected one project CodeSystem in {artifacts.folder}, found {len(codesystems)}")
    codesystem = codesystems[0]
    valuesets = {vs["url"]: vs for vs in artifacts.of_type("ValueSet")}
    extra: dict[str, list[dict[str, Any]]] = {}
    for site_set in local or []:
        if site_set["url"] not in valuesets:
            raise ConfigError(f"CDS_LOCAL_VALUESETS: {site_set['url']} is not a shipped ValueSet; local "
                              "codes extend one of those (see plan_definitions/README.md)")
        extra.setdefault(site_set["url"], []).extend((site_set.get("compose") or {}).get("include") or [])
    sources = _Sources(valuesets=valuesets, codesystem=codesystem, systems=systems, extra=extra)
    sets: dict[str, CodeSet] = {}
    for url, valueset in valuesets.items():
        sets[valueset["id"]] = _expand(url, sources)
    for code_set in sets.values():
        code_set.finish(systems)
    return Terminology(sets=sets, systems=systems, codesystem=codesystem)


@dataclass(frozen=True)
class _Sources:
    valuesets: Mapping[str, dict[str, Any]]
    codesystem: Mapping[str, Any]
    systems: Mapping[str, str]
    extra: Mapping[str, list[dict[str, Any]]]


def _expand(url: str, src: _Sources, seen: tuple[str, ...] = ()) -> CodeSet:
    if url in seen:
        raise ConfigError(f"ValueSet {url} includes itself ({' → '.join(seen)})")
    valueset = src.valuesets.get(url)
    if valueset is None:
        raise ConfigError(f"ValueSet {url} is included but not shipped")
    where = f"ValueSet/{valueset['id']}"
    result = CodeSet(key=valueset["id"], url=url, title=valueset.get("title") or valueset["id"])
    compose = valueset.get("compose") or {}
    for include in [*(compose.get("include") or []), *src.extra.get(url, [])]:
        for nested in include.get("valueSet") or []:
            inner = _expand(nested, src, (*seen, url))
            result.codes |= inner.codes
            result.prefixes |= inner.prefixes
            result.patterns += inner.patterns
            result.excluded_prefixes |= inner.excluded_prefixes
            result.names |= inner.names
            result.ordinals.update(inner.ordinals)
        system = include.get("system")
        if not system:
            continue
        system = src.systems.get(system.rstrip("/"), system.rstrip("/"))
        for concept in include.get("concept") or []:
            code = normalise_code(system, concept["code"])
            result.codes.add((system, code))
            for ext in concept.get("extension") or []:
                if ext.get("url") == ORDINAL_EXT:
                    result.ordinals[(system, code)] = float(ext["valueDecimal"])
            if system == src.codesystem.get("url"):
                result.names |= _names(src.codesystem, concept["code"], where)
        for flt in include.get("filter") or []:
            _add_filter(result, system, flt, where)
    for exclude in compose.get("exclude") or []:
        system = src.systems.get(exclude["system"].rstrip("/"), exclude["system"].rstrip("/"))
        for flt in exclude.get("filter") or []:
            if flt.get("op") != "is-a" or system not in PREFIX_HIERARCHIES:
                raise ConfigError(f"{where}: only is-a excludes on {sorted(PREFIX_HIERARCHIES)} are "
                                  "supported")
            result.excluded_prefixes.add((system, normalise_code(system, flt["value"])))
    return result


def _add_filter(result: CodeSet, system: str, flt: Mapping[str, Any], where: str) -> None:
    op, value = flt.get("op"), flt.get("value", "")
    if op == "is-a" and system in PREFIX_HIERARCHIES:
        result.prefixes.add((system, normalise_code(system, value)))
    elif op == "regex":
        try:
            result.patterns.append((system, re.compile(value)))
        except re.error as exc:
            raise ConfigError(f"{where}: regex filter {value!r} does not compile ({exc})") from None
    else:
        raise ConfigError(f"{where}: filter {op} on {system} cannot be expanded offline")


def _names(codesystem: Mapping[str, Any], code: str, where: str) -> set[str]:
    concept = _find_concept(codesystem.get("concept") or [], code)
    if concept is None:
        raise ConfigError(f"{where}: concept {code} is not in the project CodeSystem")
    names = {d["value"] for d in concept.get("designation") or [] if d.get("value")}
    return names
