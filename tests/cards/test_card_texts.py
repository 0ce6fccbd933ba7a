"""The words of every dexamethasone card the scenario tables produce, against the reviewed texts.

tests/fixtures/cards/dexamethasone.json holds, per scenario of tests/cards/collect.py's order tables (order
shapes, order hook scenarios, cycle clock rows, golden calls, and the trial-status card of each of their
records), what a clinician reads of each card: summary, indicator, detail, the labels of its suggestions
and links, and the rule's extension (rule, arm, regimen, cycle, day, missing, doubts). A changed word,
number, date or order of sentences fails here and names the scenario. After a wording change has been
reviewed against ../shared/domain/card-writing.md, write the file again and read its diff:

    .venv/bin/python -m tests.cards.test_card_texts --write
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tests.cards.collect import order_tables

TEXTS = Path(__file__).resolve().parent.parent / "fixtures" / "cards" / "dexamethasone.json"
EXTENSION_KEYS = ("rule", "arm", "regimen", "cycle", "cycleDay", "missing", "doubts", "orderDate")


def _readable(card: dict[str, Any]) -> dict[str, Any]:
    dexfree = (card.get("extension") or {}).get("dexfree") or {}
    return {
        "summary": card["summary"],
        "indicator": card["indicator"],
        "detail": card.get("detail"),
        "suggestions": [s["label"] for s in card.get("suggestions") or []],
        "links": [link["label"] for link in card.get("links") or []],
        "extension": {k: dexfree[k] for k in EXTENSION_KEYS if k in dexfree},
    }


def current_texts(knowledge: Any) -> dict[str, list[dict[str, Any]]]:
    """Scenario name → the readable part of each of its cards, as the service answers now."""
    from cds_service.app import create_app
    from cds_service.config import Config
    from cds_service.runtime import Runtime
    from tests.conftest import FIXED_NOW

    runtime = Runtime(config=Config(), knowledge=knowledge, clock=lambda: FIXED_NOW)
    client = create_app(runtime=runtime).test_client()
    texts: dict[str, list[dict[str, Any]]] = {}
    for name, card in order_tables(client):
        texts.setdefault(name, []).append(_readable(card))
    return texts


def test_every_card_reads_as_reviewed(knowledge):
    # One test builds and compares everything: a fixture shared between tests would credit only the first
    # with running the card code (mutation testing runs the tests that ran the mutated function).
    texts = current_texts(knowledge)
    reviewed = json.loads(TEXTS.read_text(encoding="utf-8"))
    assert sorted(texts) == sorted(reviewed), "scenarios with cards differ from the reviewed ones"
    changed = [name for name in texts if texts[name] != reviewed[name]]
    assert not changed, f"{len(changed)} scenarios read otherwise, first: {changed[0]!r}: " \
        f"{json.dumps(texts[changed[0]], ensure_ascii=False)[:600]}"


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    from cds_service.config import Config
    from cds_service.knowledge.model import load_knowledge

    TEXTS.parent.mkdir(parents=True, exist_ok=True)
    knowledge = load_knowledge(Config().plan_definitions)
    TEXTS.write_text(json.dumps(current_texts(knowledge), indent=1, ensure_ascii=False) + "\n",
                     encoding="utf-8")
    print(f"wrote {TEXTS}")
