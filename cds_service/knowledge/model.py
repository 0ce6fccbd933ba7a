"""Knowledge: everything the rules take from plan_definitions/, loaded once at start-up."""

from __future__ import annotations

import base64
import dataclasses
import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cds_service.errors import ConfigError
from cds_service.knowledge.artifacts import SOURCE_BASE, Artifacts, load_artifacts, versioned
from cds_service.knowledge.regimens import Regimen, read_regimen
from cds_service.knowledge.shipped import shipped_artifacts
from cds_service.knowledge.sites import Sites, load_sites
from cds_service.knowledge.sites import describe as describe_sites
from cds_service.knowledge.study import Study, read_study
from cds_service.knowledge.terminology import CodeSet, Terminology, build_terminology, read_local_valuesets
from cds_service.logs import log_event

log = logging.getLogger(__name__)

PLAN_TYPE = "http://terminology.hl7.org/CodeSystem/plan-definition-type"
# Site views remembered by Knowledge.for_site.
_MAX_SITE_VIEWS = 256


@dataclass(frozen=True)
class Coding:
    """A coding of the project's CodeSystem, as cards carry it (override reasons, rule ids)."""

    system: str
    code: str
    display: str

    def as_json(self) -> dict[str, str]:
        return {"system": self.system, "code": self.code, "display": self.display}


# Compared and hashed by identity (eq=False): one object per loaded knowledge and per site (`for_site`), so
# what is computed from it can be remembered by it (published/locations.py).
@dataclass(frozen=True, eq=False)
class Knowledge:
    """The trial's knowledge: study and arms, regimens, code sets, rule and override codes, canonicals."""

    study: Study
    regimens: tuple[Regimen, ...]
    terminology: Terminology
    rule: str  # url|version of the eca-rule PlanDefinition
    rule_codes: Mapping[str, Coding]
    override_reasons: tuple[Coding, ...]
    artifacts: Artifacts
    published: Artifacts  # the artifacts as published and served: with narratives, the Library with its ELM
    # The site adaptations (CDS_SITE_ARTIFACTS); `site` is the site this view is for (None: published).
    sites: Sites = field(default_factory=Sites)
    site: str | None = None
    published_regimens: tuple[Regimen, ...] = ()  # the published regimens, whatever the view
    # for_site's views, one object per site: the cycle-clock memo (rules/memo.py) keys on its identity.
    _views: dict[str | None, Knowledge] = field(default_factory=dict, init=False, compare=False,
                                                repr=False)

    def for_site(self, site: str | None) -> Knowledge:
        """The knowledge as a site uses it: its adaptation of each regimen it adapted, the published others.

        The runtime chooses the view per call and gives it to the rules; everything but the regimens is
        the trial's, the same at every site.
        """
        if site == self.site:
            return self
        view = self._views.get(site)
        if view is None:
            published = self.published_regimens or self.regimens
            regimens = tuple(self.sites.adaptation(site, r) or r for r in published)
            view = dataclasses.replace(self, regimens=regimens, site=site, published_regimens=published)
            # Sites come from the configuration or a caller's token: bounded, past it built each time.
            if len(self._views) < _MAX_SITE_VIEWS:
                self._views[site] = view
        return view

    def codes(self, key: str) -> CodeSet:
        """A code set by ValueSet id (e.g. "dexamethasone", "routes-local")."""
        return self.terminology[key]

    def regimen(self, key: str, arm: str) -> Regimen | None:
        return next((r for r in self.regimens if r.key == key and r.arm == arm), None)

    def regimen_for_canonical(self, canonical: str | None) -> Regimen | None:
        """The regimen a CarePlan's instantiatesCanonical names (`|version` and relative forms too)."""
        if not canonical:
            return None
        url = canonical.partition("|")[0].rstrip("/")
        # Any site's adaptation names its published regimen's stratum and arm: this view's version of it.
        adapted = (r for rs in self.sites.regimens.values() for r in rs)
        known = [*(self.published_regimens or self.regimens), *adapted]
        for regimen in known:
            if url == regimen.url or (not url.startswith("http") and regimen.url.endswith("/" + url)):
                return self.regimen(regimen.key, regimen.arm)
        return None

    def describe(self) -> str:
        sites = f", adaptations of {len(self.sites.regimens)} site(s)" if self.sites.regimens else ""
        return (f"{self.study.nct_id}: {len(self.regimens)} regimens, "
                f"{len(self.terminology.sets)} value sets from {self.artifacts.folder.name}/{sites}")


def _one_plan(artifacts: Artifacts, plan_type: str) -> dict[str, Any]:
    found = [p for p in artifacts.of_type("PlanDefinition")
             if any(c.get("system") == PLAN_TYPE and c.get("code") == plan_type
                    for c in (p.get("type") or {}).get("coding") or [])]
    if len(found) != 1:
        raise ConfigError(f"expected one {plan_type} PlanDefinition in {artifacts.folder}, "
                          f"found {len(found)}")
    return found[0]


def _codings(terminology: Terminology, group: str) -> dict[str, Coding]:
    system = terminology.codesystem["url"]
    return {c["code"]: Coding(system, c["code"], c.get("display", c["code"]))
            for c in terminology.children(group)}


def check_library(artifacts: Artifacts) -> None:
    """Each Library's CQL equals its readable source under logic/: reviewers read what is shipped."""
    for library in artifacts.of_type("Library"):
        for content in library.get("content") or []:
            if content.get("contentType") != "text/cql":
                continue
            name = library.get("name", library["id"])
            source = artifacts.folder / "logic" / f"{name}.cql"
            shipped = base64.b64decode(content.get("data", "")).decode("utf-8")
            if not source.is_file() or source.read_text(encoding="utf-8") != shipped:
                raise ConfigError(f"Library/{library['id']}: content differs from logic/{name}.cql; "
                                  "re-embed it (see plan_definitions/README.md)")


@functools.lru_cache(maxsize=4)
def shared_knowledge(folder: Path, local_valuesets: Path | None = None, site_artifacts: Path | None = None,
                     base: str | None = None) -> Knowledge:
    """The knowledge of a folder, loaded once per process (it is immutable once loaded)."""
    return load_knowledge(folder, local_valuesets, site_artifacts, base)


def load_knowledge(folder: Path, local_valuesets: Path | None = None, site_artifacts: Path | None = None,
                   base: str | None = None) -> Knowledge:
    """Load and check every artifact, under the canonical `base` (CDS_CANONICAL_BASE), and the site
    adaptations under `site_artifacts` when given; ConfigError with the artifact's name if anything is
    wrong."""
    artifacts = load_artifacts(folder, base or SOURCE_BASE)
    check_library(artifacts)
    terminology = build_terminology(artifacts, read_local_valuesets(local_valuesets))
    study, regimen_urls = read_study(artifacts, terminology)
    regimens = []
    for arm_key, by_regimen in regimen_urls.items():
        for regimen_key, canonical in by_regimen.items():
            plan = artifacts.resolve(canonical, f"protocol arm {arm_key}")
            regimens.append(read_regimen(plan, regimen_key, arm_key, artifacts, terminology))
    rule = _one_plan(artifacts, "eca-rule")
    sites = load_sites(site_artifacts, artifacts, terminology, tuple(regimens)) if site_artifacts else Sites()
    knowledge = Knowledge(study=study, regimens=tuple(regimens), terminology=terminology,
                          rule=versioned(rule), rule_codes=_codings(terminology, "rules"),
                          override_reasons=tuple(_codings(terminology, "override-reasons").values()),
                          artifacts=artifacts, sites=sites, published_regimens=tuple(regimens),
                          published=shipped_artifacts(artifacts))
    log_event(log, "knowledge loaded", study=study.nct_id, regimens=[r.canonical for r in regimens],
              valueSets=len(terminology.sets),
              localValueSets=str(local_valuesets) if local_valuesets else None,
              siteAdaptations=describe_sites(sites) or None)
    return knowledge
