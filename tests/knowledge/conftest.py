"""A writable copy of plan_definitions/ for tests that change an artifact and reload."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cds_service.config import Config

SHIPPED = Config().plan_definitions


@pytest.fixture
def artifact_copy(tmp_path: Path) -> Path:
    target = tmp_path / "plan_definitions"
    shutil.copytree(SHIPPED, target)
    return target


@pytest.fixture
def edit_artifact(artifact_copy: Path) -> Callable[[str, Callable[[dict[str, Any]], None]], Path]:
    """Change one artifact (by path under the copy) with a function; returns the copy's folder."""
    def edit(relative: str, change: Callable[[dict[str, Any]], None]) -> Path:
        path = artifact_copy / relative
        resource = json.loads(path.read_text())
        change(resource)
        path.write_text(json.dumps(resource, indent=2, ensure_ascii=False))
        return artifact_copy
    return edit
