"""Independent checks of CDS Hooks 2.0.1 documents, written from the specification (not from our builders)."""

from __future__ import annotations

from typing import Any

INDICATORS = {"info", "warning", "critical"}


def empty_values(value: Any, path: str = "$") -> list[str]:
    """Paths of null, "", [] or {} values anywhere in a document."""
    found = []
    if value is None or value == "" or value == [] or value == {}:
        return [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += empty_values(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += empty_values(item, f"{path}[{i}]")
    return found


def check_discovery(doc: dict[str, Any]) -> None:
    assert isinstance(doc.get("services"), list) and doc["services"], "services must be a non-empty array"
    assert not empty_values(doc), empty_values(doc)
    ids = set()
    for service in doc["services"]:
        for required in ("hook", "id", "description"):
            assert isinstance(service.get(required), str) and service[required], f"service needs {required}"
        assert service["id"] not in ids
        ids.add(service["id"])
        for key, template in (service.get("prefetch") or {}).items():
            assert isinstance(key, str) and isinstance(template, str)
            # Only root-level context tokens, {{context.x}} or {{userPractitionerId}}-style.
            assert "{{" not in template or "{{context." in template or "{{user" in template


def check_cds_response(body: dict[str, Any]) -> None:
    assert set(body) <= {"cards", "systemActions"}, set(body)
    assert isinstance(body["cards"], list)
    if body["cards"]:
        assert not empty_values(body), empty_values(body)
    for card in body["cards"]:
        check_card(card)


def check_card(card: dict[str, Any]) -> None:
    assert isinstance(card.get("summary"), str) and 0 < len(card["summary"]) < 140, card.get("summary")
    assert card.get("indicator") in INDICATORS
    assert isinstance(card.get("source"), dict) and card["source"].get("label")
    assert isinstance(card.get("uuid"), str) and card["uuid"]
    suggestions = card.get("suggestions") or []
    if suggestions:
        assert card.get("selectionBehavior") in {"at-most-one", "any"}
    for suggestion in suggestions:
        assert suggestion.get("label") and suggestion.get("uuid")
        for action in suggestion.get("actions") or []:
            assert action["type"] in {"create", "update", "delete"}
            assert action.get("description")
            if action["type"] == "delete":
                assert action.get("resourceId")
            else:
                assert action.get("resource")
    for reason in card.get("overrideReasons") or []:
        assert reason.get("system") and reason.get("code")
    for link in card.get("links") or []:
        assert link.get("label") and link.get("url") and link.get("type") in {"absolute", "smart"}


def check_operation_outcome(body: dict[str, Any]) -> dict[str, Any]:
    assert body.get("resourceType") == "OperationOutcome", body
    assert body["issue"] and all(i.get("severity") and i.get("code") for i in body["issue"])
    text = str(body)
    assert "Traceback" not in text and 'File "' not in text, "stack trace in an error body"
    return body["issue"][0]
