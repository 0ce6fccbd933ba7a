"""Publishing plan_definitions/: a FHIR transaction Bundle to load into a server, and a FHIR NPM package."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path
from typing import Any

from cds_service.errors import ConfigError
from cds_service.knowledge.artifacts import Artifacts, canonical_url, canonical_version
from cds_service.knowledge.model import Knowledge
from cds_service.knowledge.shipped import shipped_artifacts

FHIR_VERSION = "4.0.1"


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else 0 for p in version.split("."))


def package_version(artifacts: Artifacts) -> str:
    """The package's version: the highest artifact version, so any change to an artifact shows in it."""
    versions = [canonical_version(r) for r in artifacts if canonical_version(r)]
    return max(versions, key=_version_key)


def package_name(knowledge: Knowledge) -> str:
    """An NPM-style FHIR package id: the canonical base's host reversed, then the study."""
    host = knowledge.study.url.split("/")[2]
    return ".".join([*reversed(host.split(".")), knowledge.study.nct_id.lower()])


def canonical_base(knowledge: Knowledge) -> str:
    return knowledge.study.url.rsplit("/", 2)[0]


def transaction_bundles(artifacts: Artifacts, max_entries: int = 0) -> list[dict[str, Any]]:
    """Every artifact as a PUT, in one transaction or in several of at most `max_entries` (some servers
    cap a transaction: Medplum at 50 updates). PUTs make loading twice leave the server as loading once,
    and references between artifacts are canonicals, so the parts can be loaded in any order."""
    entries = []
    for ref, resource in sorted(shipped_artifacts(artifacts).by_ref.items()):
        entries.append({
            "fullUrl": canonical_url(resource) or ref,
            "resource": resource,
            "request": {"method": "PUT", "url": ref},
        })
    size = max_entries if max_entries > 0 else len(entries)
    return [{"resourceType": "Bundle", "type": "transaction", "entry": entries[i:i + size]}
            for i in range(0, len(entries), size)]


def transaction_bundle(artifacts: Artifacts) -> dict[str, Any]:
    """Every artifact in one transaction Bundle."""
    return transaction_bundles(artifacts)[0]


def _index_entry(ref: str, resource: dict[str, Any]) -> dict[str, Any]:
    entry = {"filename": f"{ref.replace('/', '-')}.json", "resourceType": resource["resourceType"],
             "id": resource["id"]}
    for key, value in (("url", canonical_url(resource)), ("version", canonical_version(resource)),
                       ("kind", resource.get("kind")), ("type", _type_code(resource))):
        if value:
            entry[key] = value
    return entry


def _type_code(resource: dict[str, Any]) -> str | None:
    codings = (resource.get("type") or {}).get("coding") if isinstance(resource.get("type"), dict) else None
    return codings[0].get("code") if codings else None


def npm_files(knowledge: Knowledge, artifacts: Artifacts | None = None) -> dict[str, bytes]:
    """The files of the FHIR NPM package, by path inside the archive (`package/...`); by default the
    artifacts as published (`shipped_artifacts`)."""
    artifacts = shipped_artifacts(artifacts or knowledge.published)
    version = package_version(artifacts)
    manifest = {
        "name": package_name(knowledge),
        "version": version,
        "description": f"FHIR R4 artifacts of trial {knowledge.study.nct_id}: study, protocol, regimens, "
                       "decision rule and value sets (Dex-Free CDS).",
        "fhirVersions": [FHIR_VERSION],
        "type": "fhir.ig",
        "canonical": canonical_base(knowledge),
        "url": canonical_base(knowledge),
        "author": artifacts.of_type("PlanDefinition")[0].get("publisher", ""),
        "license": "CC0-1.0",
        "dependencies": {"hl7.fhir.r4.core": FHIR_VERSION},
    }
    files = {"package/package.json": _dump(manifest)}
    index = []
    for ref, resource in sorted(artifacts.by_ref.items()):
        entry = _index_entry(ref, resource)
        index.append(entry)
        files[f"package/{entry['filename']}"] = _dump(resource)
    files["package/.index.json"] = _dump({"index-version": 1, "files": index})
    return files


def _dump(value: Any) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def write_tgz(files: dict[str, bytes], target: Path) -> None:
    """A reproducible .tgz: fixed order, times and owners, so the same artifacts give the same bytes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(files[name]), 0, 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    with target.open("wb") as out, gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())


def publish(knowledge: Knowledge, out: Path, max_entries: int = 0) -> dict[str, Path]:
    """Write the transaction Bundle(s), the package and its .tgz under `out`; returns their paths.

    One `bundle.json`, or `bundle-1.json`, `bundle-2.json`, … when `max_entries` splits it.
    """
    shipped = knowledge.published
    out.mkdir(parents=True, exist_ok=True)
    bundles = transaction_bundles(shipped, max_entries)
    if len(bundles) == 1:
        bundle = out / "bundle.json"
        bundle.write_bytes(_dump(bundles[0]))
    else:
        for number, part in enumerate(bundles, start=1):
            bundle = out / f"bundle-{number}.json"
            bundle.write_bytes(_dump(part))
    tgz = _write_package(out, npm_files(knowledge, shipped))
    return {"bundle": bundle, "package": out / "package", "tgz": tgz}


def _write_package(folder: Path, files: dict[str, bytes]) -> Path:
    """A FHIR NPM package's files under `folder` and its .tgz beside them; the .tgz's path."""
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    manifest = json.loads(files["package/package.json"])
    tgz = folder / f"{manifest['name']}-{manifest['version']}.tgz"
    write_tgz(files, tgz)
    return tgz


# --- a site's adaptations (knowledge/sites.py): a Bundle and a package of the site's own -------------

def site_package_name(knowledge: Knowledge, site: str) -> str:
    """The site package's id: the published package's, then the site (lower case, NPM-safe)."""
    safe = "".join(c if c.isalnum() or c in "-." else "-" for c in site.lower()).strip("-.")
    return f"{package_name(knowledge)}.{safe or 'site'}"


def site_npm_files(knowledge: Knowledge, site: str) -> dict[str, bytes]:
    """The FHIR NPM package of one site's adaptations; it depends on the published package it derives from."""
    resources = knowledge.sites.artifacts_of(site)
    if not resources:
        known = ", ".join(knowledge.sites.names()) or "none (CDS_SITE_ARTIFACTS unset)"
        raise ConfigError(f"--site {site}: no adaptation of that site (sites: {known})")
    versions = [canonical_version(r) for r in resources if canonical_version(r)]
    plan = next(r for r in resources if r["resourceType"] == "PlanDefinition")
    base = canonical_url(plan).rsplit("/", 2)[0]
    manifest = {
        "name": site_package_name(knowledge, site),
        "version": max(versions, key=_version_key),
        "description": f"Site {site}'s adaptations of the regimens of trial {knowledge.study.nct_id} "
                       "(PlanDefinitions derived from the published ones, and their ActivityDefinitions).",
        "fhirVersions": [FHIR_VERSION],
        "type": "fhir.ig",
        "canonical": base,
        "url": base,
        "author": resources[0].get("publisher", ""),
        "dependencies": {"hl7.fhir.r4.core": FHIR_VERSION,
                         package_name(knowledge): package_version(knowledge.artifacts)},
    }
    files = {"package/package.json": _dump(manifest)}
    index = []
    for resource in resources:
        entry = _index_entry(f"{resource['resourceType']}/{resource['id']}", resource)
        index.append(entry)
        files[f"package/{entry['filename']}"] = _dump(resource)
    files["package/.index.json"] = _dump({"index-version": 1, "files": index})
    return files


def publish_site(knowledge: Knowledge, site: str, out: Path) -> dict[str, Path]:
    """Write one site's adaptations under `out/sites/SITE/`: a transaction Bundle of PUTs (load it with the
    published one: its references are canonicals, so in either order) and its own package and .tgz."""
    files = site_npm_files(knowledge, site)
    folder = out / "sites" / site
    folder.mkdir(parents=True, exist_ok=True)
    entries = [{"fullUrl": canonical_url(r), "resource": r,
                "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
               for r in knowledge.sites.artifacts_of(site)]
    bundle = folder / "bundle.json"
    bundle.write_bytes(_dump({"resourceType": "Bundle", "type": "transaction", "entry": entries}))
    tgz = _write_package(folder, files)
    return {f"{site} bundle": bundle, f"{site} package": folder / "package", f"{site} tgz": tgz}
