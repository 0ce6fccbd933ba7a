"""Validating repeated parts of resources once: the same drug code or patient reference in many resources.

A clinic export repeats the same complex values (a drug's CodeableConcept, the patient's Reference, a
condition's clinicalStatus) across thousands of resources, and validating nested FHIR elements is most of
the cost of parsing. After a resource is parsed (`fhir.parse.parse_resource`, R4B), its complex top-level
elements are remembered, validated, by their text; a later resource of the same type with the same
element gets the validated value in place of the JSON, which the R4B model accepts as is. Everything else in
that resource is validated as usual. The cache is bounded: memory does not grow with the export.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from fhir.resources.R4B.resource import Resource

from cds_service.fhir.parse import parse_resource

_SKIP = frozenset({"contained"})  # resources inside resources: left to the model


class Interner:
    """parse_resource with already validated complex elements reused (see the module docstring)."""

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self._seen: OrderedDict[tuple[str, str, str], Any] = OrderedDict()

    def _key(self, kind: str, element: str, value: Any) -> tuple[str, str, str]:
        # repr of decoded JSON is exact (equal text means equal content) and several times cheaper than
        # json.dumps; the same content written in another key order only misses the cache.
        return kind, element, repr(value)

    def parse(self, raw: dict[str, Any]) -> Resource:
        """The R4B resource; raises ValueError like parse_resource when it does not validate."""
        kind = raw.get("resourceType", "")
        prepared, keys = dict(raw), {}
        for element, value in raw.items():
            if element in _SKIP or not isinstance(value, dict | list):
                continue
            key = keys[element] = self._key(kind, element, value)
            known = self._seen.get(key)
            if known is not None:
                self._seen.move_to_end(key)
                prepared[element] = known
        resource = parse_resource(prepared)
        for element, key in keys.items():
            if key not in self._seen:
                validated = getattr(resource, element, None)
                if validated is not None:
                    self._seen[key] = validated
                    if len(self._seen) > self.limit:
                        self._seen.popitem(last=False)
        return resource
