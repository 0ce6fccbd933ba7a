"""The study read from its ResearchStudy and clinical-protocol PlanDefinition: identifier, arms, criteria."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cds_service.errors import ConfigError
from cds_service.knowledge.artifacts import Artifacts, canonical_url, versioned
from cds_service.knowledge.terminology import Terminology

ARM_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/research-study-arm-type"


def fold(text: str) -> str:
    """Arm names as compared: case-insensitive, spaces, hyphens and underscores alike."""
    return re.sub(r"[\s_\-]+", " ", text).strip().casefold()


@dataclass(frozen=True)
class Arm:
    """A study arm: its key (A, B), published name, aliases (folded) and the regimens it is given with."""

    key: str
    code: str
    name: str
    arm_type: str
    description: str
    aliases: frozenset[str]
    regimens: Mapping[str, str]  # regimen key (ICARIA, IKEMA) → regimen PlanDefinition url

    def label(self) -> str:
        return f"arm {self.key} ({self.name})"


@dataclass(frozen=True)
class Criterion:
    """One eligibility criterion, numbered as in the protocol (I1–I7, E1–E16), with its threshold if any."""

    id: str
    text: str
    exclude: bool
    low: float | None = None
    high: float | None = None
    unit: str | None = None


@dataclass(frozen=True)
class Study:
    """The trial as the rules need it."""

    nct_id: str
    url: str
    canonical: str
    protocol_url: str
    title: str
    registry_url: str
    arms: tuple[Arm, ...]
    criteria: tuple[Criterion, ...]

    def arm_named(self, text: str | None) -> Arm | None:
        """The arm a ResearchSubject's arm text names (published name or alias, case-insensitively)."""
        if not text:
            return None
        folded = fold(text)
        return next((arm for arm in self.arms if folded in arm.aliases), None)

    def arm(self, key: str) -> Arm:
        return next(a for a in self.arms if a.key == key)

    def criterion(self, criterion_id: str) -> Criterion:
        found = next((c for c in self.criteria if c.id == criterion_id), None)
        if found is None:
            raise KeyError(criterion_id)
        return found

    def is_this_study(self, identifier_value: str | None) -> bool:
        """Whether an identifier value is this study's NCT number (any system, any case, padding ignored)."""
        return bool(identifier_value) and identifier_value.strip().casefold() == self.nct_id.casefold()


def _nct(study: Mapping[str, Any]) -> str:
    for identifier in study.get("identifier") or []:
        value = str(identifier.get("value", "")).strip()
        if value.upper().startswith("NCT"):
            return value.upper()
    raise ConfigError(f"ResearchStudy/{study['id']}: no NCT identifier")


def _protocol_arms(protocol: Mapping[str, Any], codesystem_url: str) -> dict[str, dict[str, str]]:
    """Arm code → {regimen code → regimen canonical}, from the clinical-protocol PlanDefinition's actions."""
    found: dict[str, dict[str, str]] = {}

    def code_of(action: Mapping[str, Any]) -> str | None:
        for concept in action.get("code") or []:
            for coding in concept.get("coding") or []:
                if coding.get("system") == codesystem_url:
                    return coding.get("code")
        return None

    def walk(actions: list[dict[str, Any]]) -> None:
        for action in actions:
            arm_code = code_of(action)
            if arm_code and arm_code.startswith("arm-"):
                found[arm_code] = {code_of(s) or "": s.get("definitionCanonical", "")
                                   for s in action.get("action") or []}
            else:
                walk(action.get("action") or [])

    walk(protocol.get("action") or [])
    return found


def _criteria(study: Mapping[str, Any]) -> tuple[Criterion, ...]:
    group = next((c for c in study.get("contained") or [] if c.get("resourceType") == "Group"), None)
    if group is None:
        raise ConfigError(f"ResearchStudy/{study['id']}: no contained eligibility Group")
    criteria = []
    for characteristic in group.get("characteristic") or []:
        text = (characteristic.get("code") or {}).get("text", "")
        low = high = unit = None
        if "valueRange" in characteristic:
            band = characteristic["valueRange"]
            low, high = band.get("low", {}).get("value"), band.get("high", {}).get("value")
            unit = (band.get("low") or band.get("high") or {}).get("unit")
        elif "valueQuantity" in characteristic:
            quantity = characteristic["valueQuantity"]
            low, unit = quantity.get("value"), quantity.get("unit")
        criteria.append(Criterion(id=characteristic.get("id", ""), text=text.split(": ", 1)[-1],
                                  exclude=bool(characteristic.get("exclude")), low=low, high=high, unit=unit))
    ids = [c.id for c in criteria]
    expected = [f"I{i}" for i in range(1, 8)] + [f"E{i}" for i in range(1, 17)]
    missing = [i for i in expected if i not in ids]
    if missing:
        raise ConfigError(f"ResearchStudy/{study['id']}: eligibility criteria missing: {', '.join(missing)}")
    return tuple(criteria)


def read_study(artifacts: Artifacts, terminology: Terminology) -> tuple[Study, dict[str, dict[str, str]]]:
    """The study and, per arm key, its regimen canonicals by regimen key."""
    studies = artifacts.of_type("ResearchStudy")
    if len(studies) != 1:
        raise ConfigError(f"expected one ResearchStudy in {artifacts.folder}, found {len(studies)}")
    study = studies[0]
    where = f"ResearchStudy/{study['id']}"
    protocols = [artifacts.resolve(ref["reference"], where) for ref in study.get("protocol") or []]
    if len(protocols) != 1:
        raise ConfigError(f"{where}: needs exactly one protocol PlanDefinition")
    protocol = protocols[0]
    codesystem_url = terminology.codesystem["url"]
    by_arm_code = _protocol_arms(protocol, codesystem_url)
    arm_concepts = {c["code"]: c for c in terminology.children("arms")}
    regimen_names = {c["code"]: c["display"] for c in terminology.children("regimens")}
    arms, regimen_urls = [], {}
    for published in study.get("arm") or []:
        codings = (published.get("type") or {}).get("coding") or []
        code = next((c["code"] for c in codings if c.get("system") == codesystem_url), None)
        arm_type = next((c["code"] for c in codings if c.get("system") == ARM_TYPE_SYSTEM), "")
        if code not in arm_concepts or code not in by_arm_code:
            raise ConfigError(f"{where}: arm {published.get('name')!r} needs a {codesystem_url} code "
                              "that the protocol PlanDefinition gives regimens for")
        concept = arm_concepts[code]
        key = code.removeprefix("arm-").upper()
        aliases = {fold(published["name"]), fold(concept.get("display", ""))}
        aliases |= {fold(d["value"]) for d in concept.get("designation") or []}
        regimens = {regimen_names[r]: url for r, url in by_arm_code[code].items() if r in regimen_names}
        if len(regimens) != len(by_arm_code[code]):
            raise ConfigError(f"{where}: the protocol's {code} action names an unknown regimen code")
        regimen_urls[key] = regimens
        arms.append(Arm(key=key, code=code, name=published["name"], arm_type=arm_type,
                        description=published.get("description", ""), aliases=frozenset(aliases),
                        regimens=regimens))
    taken: dict[str, str] = {}
    for arm in arms:
        for alias in arm.aliases:
            if taken.setdefault(alias, arm.key) != arm.key:
                raise ConfigError(f"{where}: alias {alias!r} names two arms")
    registry = next((r["url"] for r in study.get("relatedArtifact") or [] if r.get("url")), "")
    return Study(nct_id=_nct(study), url=canonical_url(study) or "", canonical=versioned(study),
                 protocol_url=versioned(protocol), title=study.get("title", ""), registry_url=registry,
                 arms=tuple(arms), criteria=_criteria(study)), regimen_urls
