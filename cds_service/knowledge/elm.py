"""The eca-rule's compiled logic: the committed ELM of logic/*.cql, checked against its source, and shipped.

Decision (issue 19): the ELM is compiled by `make elm` (the reference translator, node, `cql/`) and
committed as `logic/<Library name>.elm` (ELM JSON; a `.json` name would make it one of the FHIR artifacts);
the translator's output carries the SHA-256 of the CQL it was compiled from (an ELM annotation tag).
`cds-service publish` therefore needs no node at run time: it refuses an ELM that is missing, stale (another
source digest) or that records translator errors, and tests/knowledge/test_cql.py recompiles the CQL and
checks that the committed ELM is that output."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cds_service.errors import ConfigError
from cds_service.knowledge.artifacts import SOURCE_BASE
from cds_service.knowledge.terminology import CodeSet, Terminology

CQL_TYPE = "text/cql"
ELM_TYPE = "application/elm+json"
SOURCE_TAG = "dexfree-source-sha256"  # written by cql/translate.mjs


def source_digest(cql: str) -> str:
    return hashlib.sha256(cql.encode("utf-8")).hexdigest()


def elm_path(folder: Path, name: str) -> Path:
    """Where the committed ELM of logic/<name>.cql lives."""
    return folder / "logic" / f"{name}.elm"


def _tags(elm: dict[str, Any]) -> dict[str, str]:
    tags = {}
    for annotation in elm.get("library", {}).get("annotation") or []:
        for tag in annotation.get("t") or []:
            tags[tag.get("name")] = tag.get("value")
    return tags


def checked_elm(folder: Path, library: dict[str, Any]) -> bytes:
    """The ELM JSON of a Library, as committed; ConfigError if missing, not compiled from the shipped CQL,
    or carrying a translator error."""
    name = library.get("name", library["id"])
    path = elm_path(folder, name)
    where = f"Library/{library['id']}"
    if not path.is_file():
        raise ConfigError(f"{where}: no compiled ELM at logic/{path.name}; run `make elm`")
    raw = path.read_bytes()
    try:
        elm = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"{where}: logic/{path.name} is not JSON ({exc})") from None
    cql = next((base64.b64decode(c["data"]).decode("utf-8") for c in library.get("content") or []
                if c.get("contentType") == CQL_TYPE and c.get("data")), None)
    if cql is None:
        raise ConfigError(f"{where}: no text/cql content to compile")
    if _tags(elm).get(SOURCE_TAG) != source_digest(cql):
        raise ConfigError(f"{where}: logic/{path.name} was not compiled from the shipped CQL; run `make elm`")
    errors = [a.get("message", "") for a in elm["library"].get("annotation") or []
              if a.get("type") == "CqlToElmError" and a.get("errorSeverity") == "error"]
    if errors:
        raise ConfigError(f"{where}: the CQL does not compile: {errors[0]}")
    return raw


def with_elm(library: dict[str, Any], folder: Path, base: str = SOURCE_BASE) -> dict[str, Any]:
    """A copy of a Library whose content carries its ELM (base64) beside the CQL (the CQL first).

    Under another canonical base, the CQL and the ELM name the artifacts under it too (their value sets,
    CodeSystem and study canonicals), as every other published artifact does.
    """
    shipped = copy.deepcopy(library)
    if not any(c.get("contentType") == CQL_TYPE for c in shipped.get("content") or []):
        return shipped
    elm = checked_elm(folder, library).strip()
    content = []
    for part in shipped["content"]:
        if part.get("contentType") == CQL_TYPE and part.get("data") and base != SOURCE_BASE:
            cql = base64.b64decode(part["data"]).replace(SOURCE_BASE.encode(), base.encode())
            content.append({**part, "data": base64.b64encode(cql).decode("ascii")})
        elif part.get("contentType") != ELM_TYPE:
            content.append(part)
    if base != SOURCE_BASE:
        elm = elm.replace(SOURCE_BASE.encode(), base.encode())
    content.append({"contentType": ELM_TYPE, "data": base64.b64encode(elm).decode("ascii")})
    shipped["content"] = content
    return shipped


def _codes(code_set: CodeSet, terminology: Terminology) -> list[dict[str, str]]:
    if code_set.prefixes or code_set.patterns or code_set.excluded_prefixes:
        raise ConfigError(f"ValueSet {code_set.url}: an is-a or regex filter cannot be listed for a CQL "
                          "engine")
    aliases = {}
    for alias, system in terminology.systems.items():
        aliases.setdefault(system, set()).add(alias)
    found = set()
    for system, code in code_set.codes:
        for spelled in {system, *aliases.get(system, ())}:
            found.add((spelled, code))
    return [{"system": s, "code": c} for s, c in sorted(found)]


def value_set_codes(terminology: Terminology, urls: Iterable[str]) -> dict[str, list[dict[str, str]]]:
    """The project's own expansion of value sets (system aliases included), as a CQL engine's CodeService
    takes them: {url: [{system, code}]}."""
    by_url = {s.url: s for s in terminology.sets.values()}
    missing = [u for u in urls if u not in by_url]
    if missing:
        raise ConfigError(f"value sets not shipped: {', '.join(missing)}")
    return {url: _codes(by_url[url], terminology) for url in urls}


def embed_sources(folder: Path) -> list[Path]:
    """Write each logic/<name>.cql into its Library's text/cql content (`make elm`, after compiling)."""
    changed = []
    for path in sorted((folder / "rules").glob("Library-*.json")):
        library = json.loads(path.read_text(encoding="utf-8"))
        source = folder / "logic" / f"{library.get('name', library['id'])}.cql"
        if not source.is_file():
            continue
        data = base64.b64encode(source.read_bytes()).decode("ascii")
        for content in library.get("content") or []:
            if content.get("contentType") == CQL_TYPE and content.get("data") != data:
                content["data"] = data
                path.write_text(json.dumps(library, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
                changed.append(path)
    return changed
