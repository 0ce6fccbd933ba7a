"""CDS Hooks 2.0.1 response building: the one place that shapes cards and enforces the spec's rules."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cds_service.logs import log_event

log = logging.getLogger(__name__)

INDICATORS = ("info", "warning", "critical")
SELECTION_BEHAVIORS = ("at-most-one", "any")
ACTION_TYPES = ("create", "update", "delete")
LINK_TYPES = ("absolute", "smart")
# "summary: <140-character summary message for display to the user" — so 139 at most.
SUMMARY_MAX = 139


class _RandomBytes:
    """Random bytes for uuids, read from the system a page at a time: `os.urandom` releases the GIL, and
    a request thread that gives it up under load waits for it behind the others (up to the interpreter's
    switch interval, 5 ms, each time; six uuids a card made that the p99 of a call). The same kernel
    randomness, one system call per 256 uuids; a forked worker starts with an empty page, so no two
    workers hand out the same bytes."""

    _PAGE = 4096

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._lock = threading.Lock()
        self._page = b""
        self._at = 0

    def take(self, size: int) -> bytes:
        with self._lock:
            if self._at + size > len(self._page):
                self._page, self._at = os.urandom(self._PAGE), 0
            self._at += size
            return self._page[self._at - size:self._at]


_RANDOM = _RandomBytes()
os.register_at_fork(after_in_child=_RANDOM.reset)


def new_uuid() -> str:
    """A random (version 4) UUID for a card or a suggestion, in its canonical form."""
    # Written from the hex digits: `str(uuid.UUID(...))` makes an object and an int of them (three times
    # as long; a card and its suggestions take three). Version 4 in the 13th digit, the RFC 4122 variant
    # (10xx) in the two high bits of the 17th.
    x = _RANDOM.take(16).hex()
    return f"{x[:8]}-{x[8:12]}-4{x[13:16]}-{_VARIANT[int(x[16], 16) & 3]}{x[17:20]}-{x[20:]}"


_VARIANT = "89ab"


class CardError(ValueError):
    """A card the service built breaks the specification: a programming error, never sent as is."""


def coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    """A CDS Hooks Coding (system and code are required by the spec for override reasons)."""
    return prune({"system": system, "code": code, "display": display})


def link(label: str, url: str, kind: str = "absolute", app_context: str | None = None) -> dict[str, Any]:
    """A card link; `smart` links may carry an appContext."""
    return prune({"label": label, "url": url, "type": kind, "appContext": app_context})


def action(kind: str, description: str, *, resource: Mapping[str, Any] | None = None,
           resource_id: str | None = None) -> dict[str, Any]:
    """A suggestion action: create/update carry a resource, delete a resourceId (`Type/id`).

    Only its own fields are pruned here: the resource inside is pruned with the card (`card`, and
    `cds_response` again), not once more for each builder it passes through."""
    return _shallow({"type": kind, "description": description, "resource": resource,
                     "resourceId": resource_id})


def suggestion(label: str, actions: Sequence[Mapping[str, Any]], *, recommended: bool | None = None,
               suggestion_uuid: str | None = None) -> dict[str, Any]:
    """A suggestion with its actions; a uuid is given so the client can report it as accepted (its actions
    are pruned with the card, as an action's resource is)."""
    return _shallow({"label": label, "uuid": suggestion_uuid or new_uuid(),
                     "isRecommended": recommended, "actions": list(actions)})


def card(
    *,
    summary: str,
    indicator: str,
    source: Mapping[str, Any],
    detail: str | None = None,
    suggestions: Sequence[Mapping[str, Any]] = (),
    selection_behavior: str | None = None,
    override_reasons: Sequence[Mapping[str, Any]] = (),
    links: Sequence[Mapping[str, Any]] = (),
    extension: Mapping[str, Any] | None = None,
    card_uuid: str | None = None,
) -> dict[str, Any]:
    """A card, checked against the specification (see `check_card`)."""
    built = Card(prune({
        "uuid": card_uuid or new_uuid(),
        "summary": summary,
        "detail": detail,
        "indicator": indicator,
        "source": dict(source),
        "suggestions": list(suggestions),
        "selectionBehavior": selection_behavior or ("at-most-one" if suggestions else None),
        "overrideReasons": list(override_reasons),
        "links": list(links),
        "extension": dict(extension) if extension else None,
    }))
    return check_card(built)


class Card(dict):
    """A card as `card` made it: pruned and checked. `cds_response` checks it again (the service points
    its links since, with `cards.common.served_links`, which writes URLs only) without pruning it again:
    pruning a card with its suggested order and evidence was a tenth of building it."""


def check_card(built: dict[str, Any]) -> dict[str, Any]:
    """Enforce the spec on one card: required fields, allowed codes, summary length, uuids."""
    if not built.get("uuid"):
        built["uuid"] = new_uuid()
    summary = " ".join(str(built.get("summary") or "").split())
    if not summary:
        raise CardError("card without summary")
    if len(summary) > SUMMARY_MAX:
        # A clinician must still get the card; the full text is in the detail. Logged so it gets fixed.
        log_event(log, "card summary shortened", logging.WARNING, length=len(summary))
        summary = summary[: SUMMARY_MAX - 1].rstrip() + "…"
    built["summary"] = summary
    if built.get("indicator") not in INDICATORS:
        raise CardError(f"card indicator {built.get('indicator')!r} is not one of {INDICATORS}")
    if not isinstance(built.get("source"), dict) or not built["source"].get("label"):
        raise CardError("card without source.label")
    suggestions = built.get("suggestions") or []
    for item in suggestions:
        if not item.get("uuid"):
            item["uuid"] = new_uuid()
        if not item.get("label"):
            raise CardError("suggestion without label")
        for act in item.get("actions") or []:
            _check_action(act)
    if suggestions:
        built.setdefault("selectionBehavior", "at-most-one")
        if built["selectionBehavior"] not in SELECTION_BEHAVIORS:
            raise CardError(f"selectionBehavior {built['selectionBehavior']!r} is not allowed")
    else:
        built.pop("selectionBehavior", None)
    for reason in built.get("overrideReasons") or []:
        if not reason.get("system") or not reason.get("code"):
            raise CardError("override reason without system and code")
    for item in built.get("links") or []:
        if not item.get("label") or not item.get("url") or item.get("type") not in LINK_TYPES:
            raise CardError("link needs label, url and type absolute|smart")
        if item.get("appContext") and item["type"] != "smart":
            raise CardError("appContext is only for smart links")
    return built


def _check_action(act: Mapping[str, Any]) -> None:
    kind = act.get("type")
    if kind not in ACTION_TYPES:
        raise CardError(f"action type {kind!r} is not one of {ACTION_TYPES}")
    if not act.get("description"):
        raise CardError("action without description")
    if kind == "delete" and not act.get("resourceId"):
        raise CardError("delete action without resourceId")
    if kind in ("create", "update") and not act.get("resource"):
        raise CardError(f"{kind} action without resource")


def cds_response(cards: Iterable[Mapping[str, Any]],
                 system_actions: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The body of a service response: `{"cards": [...]}` (the one empty array the spec allows)."""
    checked = [check_card(c if type(c) is Card else prune(dict(c))) for c in cards]
    body: dict[str, Any] = {"cards": checked}
    actions = [prune(dict(a)) for a in system_actions]
    if actions:
        body["systemActions"] = actions
    return body


# JSON leaves as json.loads and the card builders make them: returned as they are, without the ABC checks
# (a card's suggestion carries a whole MedicationRequest: pruning it was half the cost of building a card).
_LEAVES = frozenset({str, int, float, bool})


def prune(value: Any) -> Any:
    """Drop null, empty-string, empty-array and empty-object values, recursively (the spec forbids them)."""
    kind = type(value)
    if kind in _LEAVES:
        return value
    # Plain dicts, lists and tuples are told by their type: the ABC checks below are for anything else
    # (a card's evidence is tuples, and an isinstance on Mapping costs more than the pruning of a leaf).
    if kind is dict or (kind is not list and kind is not tuple and isinstance(value, Mapping)):
        out = {}
        for key, item in value.items():
            if type(item) in _LEAVES:
                # Of the leaves only the empty string is dropped (a card's texts and evidence lists are
                # mostly leaves: no call, no check of their size).
                if item != "":
                    out[key] = item
            elif item is not None:
                kept = prune(item)
                if kept if type(kept) in _SIZED else not _empty(kept):
                    out[key] = kept
        return out
    if kind is list or kind is tuple or isinstance(value, list | tuple):
        items = []
        for item in value:
            if type(item) in _LEAVES:
                if item != "":
                    items.append(item)
            elif item is not None:
                kept = prune(item)
                if kept if type(kept) in _SIZED else not _empty(kept):
                    items.append(kept)
        return items
    return value


def _shallow(value: dict[str, Any]) -> dict[str, Any]:
    """`value` without its empty fields (as `prune` tells them), leaving what they hold as it is."""
    return {key: item for key, item in value.items() if not _empty(item)}


def _empty(value: Any) -> bool:
    if value is None:
        return True
    if type(value) in _SIZED:
        return not value
    return isinstance(value, str | list | dict) and len(value) == 0


_SIZED = frozenset({str, list, dict})
