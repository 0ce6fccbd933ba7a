"""Site adaptations (CDS_SITE_ARTIFACTS): a centre's own version of a published regimen, checked at start.

The protocol lets each centre adapt the ICARIA and IKEMA schemas to its standard of care. An adaptation
is a PlanDefinition of the site, shaped like the published regimen it adapts (knowledge/regimens.py),
with its own `url`, `version` and `publisher`, and:
- `relatedArtifact` of type `derived-from` whose `resource` is the canonical of the published regimen
  (R4 PlanDefinition has no `derivedFrom` element; this is R4's way to say it) — one published regimen,
  in the same arm: the adaptation takes its stratum and arm from it;
- `useContext` with code `venue` (usage-context-type) whose `valueCodeableConcept` has exactly one coding:
  its `code` is the site's id (what the issuers file's `sites`, CDS_SITE_FHIR_SERVERS and
  CDS_DEFAULT_SITE name; the system is the site's own, e.g. its FINESS identifier system).
The folder holds only PlanDefinitions and the ActivityDefinitions they use (a site's own doses); every
file is validated like plan_definitions/, and neither an id nor a canonical may repeat a published one
(a transaction PUT would overwrite the published artifact).

What may change: doses (its own ActivityDefinitions, age bands included), days of each drug, cycle
lengths and how cycle definitions are split. What may not: in which cycles dexamethasone is given. A
cycle where the site gives dexamethasone and the published regimen does not (arm B from cycle 3), or the
reverse, refuses the start naming the file and the action: the trial's rule is the same at every site.
A site without an adaptation of a regimen uses the published one; a site with no file at all is simply
the published regimens (named in the audit all the same).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cds_service.errors import ConfigError
from cds_service.knowledge.artifacts import Artifacts, add_artifact, check_references
from cds_service.knowledge.regimens import Regimen, read_regimen
from cds_service.knowledge.terminology import Terminology

SETTING = "CDS_SITE_ARTIFACTS"
SITE_CONTEXT = ("http://terminology.hl7.org/CodeSystem/usage-context-type", "venue")
DERIVED_FROM = "derived-from"
SITE_TYPES = ("PlanDefinition", "ActivityDefinition")
# The drug whose cycles a site may not change (the ValueSet id, as in REGIMEN_DRUGS).
DEX = "dexamethasone"


@dataclass(frozen=True)
class Sites:
    """The site adaptations: each site's regimens, and the files they come from (to publish them)."""

    folder: Path | None = None
    regimens: Mapping[str, tuple[Regimen, ...]] = field(default_factory=dict)
    artifacts: Artifacts | None = None
    # Type/id of the artifacts of each site (its PlanDefinitions and the ActivityDefinitions they use).
    refs: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self.regimens))

    def adaptation(self, site: str | None, regimen: Regimen) -> Regimen | None:
        """The site's adaptation of a published regimen, or None."""
        return next((r for r in self.regimens.get(site or "", ()) if r.derived_from == regimen.url), None)

    def artifacts_of(self, site: str) -> list[dict[str, Any]]:
        """The site's own artifacts, as published."""
        if self.artifacts is None or site not in self.refs:
            return []
        return [self.artifacts.by_ref[ref] for ref in sorted(self.refs[site])]


def _merged(published: Artifacts, site: Artifacts) -> Artifacts:
    """Published and site artifacts as one index, for resolving the site's references."""
    return Artifacts(folder=site.folder, by_url={**published.by_url, **site.by_url},
                     by_ref={**published.by_ref, **site.by_ref}, files={**published.files, **site.files})


def site_of(plan: Mapping[str, Any], where: str) -> str:
    """The site a PlanDefinition names in its `venue` useContext; ConfigError if it names none or several."""
    contexts = [c for c in plan.get("useContext") or []
                if ((c.get("code") or {}).get("system"), (c.get("code") or {}).get("code")) == SITE_CONTEXT]
    codes = [coding.get("code") for context in contexts
             for coding in (context.get("valueCodeableConcept") or {}).get("coding") or []]
    if len(codes) != 1 or not isinstance(codes[0], str) or not codes[0].strip():
        raise ConfigError(f"{where}: a site adaptation needs one useContext with code "
                          f"{SITE_CONTEXT[0]}#{SITE_CONTEXT[1]} whose valueCodeableConcept has exactly one "
                          f"coding, its code the site id (found {len(codes)})")
    return codes[0].strip()


def derived_from(plan: Mapping[str, Any], published: tuple[Regimen, ...], where: str) -> Regimen:
    """The published regimen a site's PlanDefinition adapts (relatedArtifact `derived-from`)."""
    targets = [a.get("resource") for a in plan.get("relatedArtifact") or [] if a.get("type") == DERIVED_FROM]
    known = ", ".join(sorted(r.url for r in published))
    if len(targets) != 1 or not isinstance(targets[0], str):
        raise ConfigError(f"{where}: a site adaptation needs exactly one relatedArtifact of type "
                          f"{DERIVED_FROM} naming the published regimen it adapts (one of {known}); "
                          f"found {len(targets)}")
    url, _, version = targets[0].partition("|")
    regimen = next((r for r in published if r.url == url), None)
    if regimen is None:
        raise ConfigError(f"{where}: derived-from {targets[0]} is not a published regimen (one of {known})")
    if version and regimen.canonical != f"{url}|{version}":
        raise ConfigError(f"{where}: derived-from {targets[0]} names version {version}, the published "
                          f"regimen is {regimen.canonical}")
    return regimen


def check_dexamethasone_cycles(adapted: Regimen, published: Regimen, where: str) -> None:
    """The adaptation gives dexamethasone in exactly the cycles the published regimen does; else refused."""
    horizon = max(b.first for b in (*adapted.blocks, *published.blocks))  # the open-ended blocks included
    stop = published.first_cycle_without(DEX)
    for cycle in range(1, horizon + 1):
        block = adapted.block(cycle)
        if adapted.gives(DEX, cycle) and not published.gives(DEX, cycle):
            action = block.drug(DEX)
            raise ConfigError(
                f"{where}: action {action.action_id} (cycle definition {block.action_id}) gives "
                f"dexamethasone in cycle {cycle}, but the published regimen {published.canonical} gives "
                f"none from cycle {stop}: in arm {published.arm} dexamethasone stops there at every site")
        if published.gives(DEX, cycle) and not adapted.gives(DEX, cycle):
            raise ConfigError(
                f"{where}: cycle definition {block.action_id if block else '(none)'} gives no dexamethasone "
                f"in cycle {cycle}, the published regimen {published.canonical} does: a site may change the "
                "dexamethasone dose and days, not the cycles it is given in")


def load_sites(folder: Path, published: Artifacts, terminology: Terminology,
               regimens: tuple[Regimen, ...]) -> Sites:
    """Read and check every site adaptation under `folder`; ConfigError naming the file and the reason."""
    if not folder.is_dir():
        raise ConfigError(f"{SETTING}: {folder} is not a folder of site artifacts")
    own = Artifacts(folder=folder, base=published.base)  # its references to the published, rebased too
    where_of: dict[str, str] = {}
    for path in sorted(folder.rglob("*.json")):
        where = f"{SETTING} {path.relative_to(folder)}"
        resource = add_artifact(own, path, where, taken=published)
        ref = f"{resource['resourceType']}/{resource['id']}"
        if resource["resourceType"] not in SITE_TYPES:
            raise ConfigError(f"{where}: a site artifact is a PlanDefinition (the adapted regimen) or an "
                              f"ActivityDefinition (its doses), not a {resource['resourceType']}")
        where_of[ref] = where
    everything = _merged(published, own)
    try:
        check_references(own, everything)
    except ConfigError as exc:
        ref = str(exc).split(":", 1)[0]
        raise ConfigError(f"{where_of.get(ref, SETTING)}: {exc}") from None
    by_site: dict[str, list[Regimen]] = {}
    refs: dict[str, set[str]] = {}
    for plan in own.of_type("PlanDefinition"):
        ref = f"PlanDefinition/{plan['id']}"
        where = where_of[ref]
        site = site_of(plan, where)
        origin = derived_from(plan, regimens, where)
        try:
            adapted = read_regimen(plan, origin.key, origin.arm, everything, terminology)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        adapted = dataclasses.replace(adapted, site=site, derived_from=origin.url)
        check_dexamethasone_cycles(adapted, origin, where)
        if any(r.derived_from == origin.url for r in by_site.get(site, ())):
            raise ConfigError(f"{where}: site {site} already has an adaptation of {origin.url}")
        by_site.setdefault(site, []).append(adapted)
        used = {a.activity.partition("|")[0] for b in adapted.blocks for d in b.drugs for a in d.options}
        refs.setdefault(site, set()).add(ref)
        refs[site] |= {f"ActivityDefinition/{a['id']}" for a in own.of_type("ActivityDefinition")
                       if a.get("url") in used}
    if not by_site:
        raise ConfigError(f"{SETTING}: no site PlanDefinition in {folder}")
    return Sites(folder=folder, regimens={s: tuple(r) for s, r in by_site.items()}, artifacts=own,
                 refs={s: frozenset(r) for s, r in refs.items()})


def describe(sites: Sites) -> dict[str, list[str]]:
    """Each site's adapted regimens (url|version), for the start-up log."""
    return {site: [r.canonical for r in regimens] for site, regimens in sorted(sites.regimens.items())}
