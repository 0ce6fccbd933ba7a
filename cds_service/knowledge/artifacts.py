"""Reading plan_definitions/: every FHIR artifact validated with the R4B models, indexed by canonical URL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from cds_service.errors import ConfigError

# ResearchStudy has no `url` in R4: the R5 element is carried as the official cross-version extension.
R5_STUDY_URL = "http://hl7.org/fhir/5.0/StructureDefinition/extension-ResearchStudy.url"
R5_STUDY_VERSION = "http://hl7.org/fhir/5.0/StructureDefinition/extension-ResearchStudy.version"
# What a publishable artifact must carry, so that a pharmacist can tell what and whose it is.
REQUIRED_METADATA = ("url", "version", "status", "name", "title", "date", "publisher")
USABLE_STATUSES = ("draft", "active")
# The canonical base the files are written under: example.org is reserved for examples (RFC 2606), so no one
# mistakes it for a real host. A deployment publishes under its own (CDS_CANONICAL_BASE): every URL under
# this base is moved under that one when the artifacts are read.
SOURCE_BASE = "https://dexfree.example.org/fhir"
_UNDER_SOURCE_BASE = (SOURCE_BASE + "/", SOURCE_BASE + "|")


@dataclass
class Artifacts:
    """The artifacts of one folder: raw JSON (what is published) by canonical URL and by `Type/id`."""

    folder: Path
    base: str = SOURCE_BASE  # the canonical base the artifacts were read under
    shipped: bool = False  # as published: with what publishing adds (knowledge/shipped.py)
    by_url: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_ref: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.by_ref.values())

    def of_type(self, resource_type: str) -> list[dict[str, Any]]:
        return [r for r in self if r["resourceType"] == resource_type]

    def resolve(self, canonical: str, where: str) -> dict[str, Any]:
        """The artifact a canonical (`url`, `url|version`) or `Type/id` names; ConfigError if none."""
        url, _, version = canonical.partition("|")
        found = self.by_url.get(url) or self.by_ref.get(url)
        if found is None:
            raise ConfigError(f"{where}: {canonical} does not resolve to an artifact in {self.folder}")
        if version and canonical_version(found) != version:
            raise ConfigError(f"{where}: {canonical} names version {version}, the artifact is "
                              f"{canonical_version(found)}")
        return found


def canonical_url(resource: dict[str, Any]) -> str | None:
    """An artifact's canonical URL (the R5 extension for ResearchStudy)."""
    if resource.get("url"):
        return resource["url"]
    return _extension(resource, R5_STUDY_URL, "valueUri")


def canonical_version(resource: dict[str, Any]) -> str | None:
    return resource.get("version") or _extension(resource, R5_STUDY_VERSION, "valueString")


def versioned(resource: dict[str, Any]) -> str:
    """`url|version`: how cards and discovery cite an artifact."""
    return f"{canonical_url(resource)}|{canonical_version(resource)}"


def _extension(resource: dict[str, Any], url: str, key: str) -> Any:
    for ext in resource.get("extension") or []:
        if ext.get("url") == url:
            return ext.get(key)
    return None


def rebase(value: Any, base: str) -> Any:
    """A copy of JSON with every URL under SOURCE_BASE (canonicals, codings' systems) moved under `base`."""
    if isinstance(value, dict):
        return {k: rebase(v, base) for k, v in value.items()}
    if isinstance(value, list):
        return [rebase(v, base) for v in value]
    if isinstance(value, str) and (value == SOURCE_BASE or value.startswith(_UNDER_SOURCE_BASE)):
        return base + value[len(SOURCE_BASE):]
    return value


def load_artifacts(folder: Path, base: str = SOURCE_BASE) -> Artifacts:
    """Read and validate every `*.json` under `folder`; a broken artifact stops the start-up with its name.

    Under another canonical `base`, every URL under SOURCE_BASE is rewritten (the files keep theirs); the
    Library's embedded CQL stays as its source file, and is rewritten when published (knowledge/shipped.py).
    """
    if not folder.is_dir():
        raise ConfigError(f"CDS_PLAN_DEFINITIONS: {folder} is not a folder of FHIR artifacts")
    artifacts = Artifacts(folder=folder, base=base.rstrip("/"))
    for path in sorted(folder.rglob("*.json")):
        add_artifact(artifacts, path, str(path.relative_to(folder)))
    if not artifacts.by_ref:
        raise ConfigError(f"CDS_PLAN_DEFINITIONS: no FHIR artifact in {folder}")
    check_references(artifacts)
    return artifacts


def add_artifact(artifacts: Artifacts, path: Path, where: str,
                 taken: Artifacts | None = None) -> dict[str, Any]:
    """Read, validate and index one file; its `Type/id` and canonical must be new (here and in `taken`)."""
    resource = _read(path, where)
    if artifacts.base != SOURCE_BASE:
        resource = rebase(resource, artifacts.base)
    ref = f"{resource['resourceType']}/{resource.get('id')}"
    if not resource.get("id") or ref in artifacts.by_ref or (taken is not None and ref in taken.by_ref):
        raise ConfigError(f"{where}: needs a unique id ({ref})")
    _check_metadata(resource, where)
    url = canonical_url(resource)
    if url and (url in artifacts.by_url or (taken is not None and url in taken.by_url)):
        raise ConfigError(f"{where}: canonical {url} is used twice")
    artifacts.by_ref[ref] = resource
    artifacts.files[ref] = path
    if url:
        artifacts.by_url[url] = resource
    return resource


def _read(path: Path, where: str) -> dict[str, Any]:
    try:
        resource = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{where}: not readable JSON ({exc})") from None
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        raise ConfigError(f"{where}: not a FHIR resource")
    try:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    except (KeyError, ValueError) as exc:
        errors = exc.errors()[:3] if isinstance(exc, ValidationError) else []
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors) or str(exc)
        raise ConfigError(f"{where}: not a valid FHIR R4 {resource['resourceType']}: {detail}") from None
    return resource


def _check_metadata(resource: dict[str, Any], where: str) -> None:
    if resource["resourceType"] in ("NamingSystem",):
        return  # NamingSystem has no url/version/title in R4
    missing = [k for k in REQUIRED_METADATA if not _metadata(resource, k)]
    if missing:
        raise ConfigError(f"{where}: metadata missing: {', '.join(missing)}")
    if resource.get("status") not in USABLE_STATUSES:
        raise ConfigError(f"{where}: status {resource.get('status')!r} is not one of {USABLE_STATUSES}")


def _metadata(resource: dict[str, Any], key: str) -> Any:
    if key == "url":
        return canonical_url(resource)
    if key == "version":
        return canonical_version(resource)
    if resource["resourceType"] == "ResearchStudy":
        # R4 ResearchStudy has no name/date/publisher: the R5 elements as extensions, the sponsor publishes.
        extra = {"name": "extension-ResearchStudy.name", "date": "extension-ResearchStudy.date"}
        if key in extra:
            return any(str(e.get("url", "")).endswith(extra[key]) for e in resource.get("extension") or [])
        if key == "publisher":
            return (resource.get("sponsor") or {}).get("display")
    return resource.get(key)


def references(value: Any) -> Iterator[str]:
    """Every canonical and reference between artifacts inside a resource (contained `#` ones excluded)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("definitionCanonical", "resource") and isinstance(item, str):
                yield item
            elif key in ("library", "valueSet", "instantiatesCanonical") and isinstance(item, list):
                yield from (i for i in item if isinstance(i, str))
            elif key == "reference" and isinstance(item, str) and not item.startswith("#"):
                yield item
            else:
                yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def check_references(artifacts: Artifacts, within: Artifacts | None = None) -> None:
    """Every reference from one artifact to another that lives under our canonical base must resolve
    (in `within`, when given: the site artifacts refer to the published ones too)."""
    within = within or artifacts
    bases = {url.rsplit("/", 2)[0] for url in within.by_url}
    for ref, resource in artifacts.by_ref.items():
        for target in references(resource):
            absolute = target.startswith(("http://", "https://"))
            if not absolute or any(target.startswith(b + "/") for b in bases):
                within.resolve(target, ref)
