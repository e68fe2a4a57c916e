"""Render docs/openapi.yaml (the source, for people to edit) to entrypoints/web/openapi.json
(what GET /api/v1/openapi.json answers and /docs shows; package data, so an installed
Courier serves it too).

    .venv/bin/python scripts/render_openapi.py

tests/unit/test_api_description.py fails while the JSON is not the rendering of the YAML."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "docs" / "openapi.yaml"
TARGET = REPO / "entrypoints" / "web" / "openapi.json"


def rendered() -> str:
    document = yaml.safe_load(SOURCE.read_text(encoding="utf-8"))
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    TARGET.write_text(rendered(), encoding="utf-8")
    print(f"wrote {TARGET.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
