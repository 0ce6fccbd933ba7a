"""Operational events: a module-level observer registry that any layer may announce to.

The layers that know an event (the FHIR gateway, the JWT check, the audit writer, the runtime) call
`emit(name, **fields)`; whoever wants to count them (cds_service/ops/metrics.py) subscribes. This
module imports nothing of the service, so a low layer depends on it without any arrow running up to
ops/. Fields are codes and numbers only (reason codes, ids from closed sets, counts), never patient
data, tokens or free text: the listener still checks every label against a closed set.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Listener = Callable[[str, dict[str, Any]], None]

_listeners: list[Listener] = []


def subscribe(listener: Listener) -> None:
    """Add a listener (once: subscribing it again changes nothing)."""
    if listener not in _listeners:
        _listeners.append(listener)


def unsubscribe(listener: Listener) -> None:
    """Remove a listener (tests)."""
    if listener in _listeners:
        _listeners.remove(listener)


def emit(name: str, **fields: Any) -> None:
    """Tell every listener; a listener's failure never reaches the code that announced the event."""
    for listener in tuple(_listeners):
        try:
            listener(name, fields)
        except Exception:  # noqa: S112 - counting must never fail a hook call
            continue
