"""What is published of each artifact: the source as written, plus what publishing adds (its narrative, and
for a Library its compiled ELM beside the CQL)."""

from __future__ import annotations

from cds_service.knowledge.artifacts import Artifacts, canonical_url
from cds_service.knowledge.elm import with_elm
from cds_service.knowledge.narrative import with_narrative


def shipped_artifacts(artifacts: Artifacts) -> Artifacts:
    """The artifacts as published; ConfigError when a Library's ELM is missing, stale or has errors."""
    if artifacts.shipped:
        return artifacts
    shipped = Artifacts(artifacts.folder, artifacts.base, shipped=True, files=dict(artifacts.files))
    for ref, resource in artifacts.by_ref.items():
        published = resource
        if resource["resourceType"] == "Library":
            published = with_elm(resource, artifacts.folder, artifacts.base)
        published = with_narrative(published, artifacts)
        shipped.by_ref[ref] = published
        url = canonical_url(published)
        if url:
            shipped.by_url[url] = published
    return shipped
