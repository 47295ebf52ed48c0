"""Extract the OpenAI schemas the Responses mock validates against, with everything they reference,
from the official OpenAPI document into tests/mocks/openai_schemas.json.

Why a vendored extract: CI runs on a clean checkout without the reference folder beside it, and the
whole document is 3 MB of YAML. Run it again when the reference document changes:

    python scripts/extract_openai_schemas.py ../shared/specs/openai-openapi.yaml
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "mocks" / "openai_schemas.json"
# The roots: what tests/mocks/openai_responses.py names (requests, replies and each stream event).
ROOTS = (
    "CreateResponse", "Response", "ResponseErrorEvent", "ResponseCreatedEvent", "ResponseInProgressEvent",
    "ResponseCompletedEvent", "ResponseIncompleteEvent", "ResponseOutputItemAddedEvent",
    "ResponseOutputItemDoneEvent", "ResponseContentPartAddedEvent", "ResponseContentPartDoneEvent",
    "ResponseTextDeltaEvent", "ResponseTextDoneEvent", "ResponseFunctionCallArgumentsDeltaEvent",
    "ResponseFunctionCallArgumentsDoneEvent", "ResponseReasoningSummaryPartAddedEvent",
    "ResponseReasoningSummaryPartDoneEvent", "ResponseReasoningSummaryTextDeltaEvent",
    "ResponseReasoningSummaryTextDoneEvent",
)
PREFIX = "#/components/schemas/"


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(PREFIX):
            found.add(ref[len(PREFIX):])
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value)
    return found


def extract(spec_path: Path) -> dict[str, Any]:
    with spec_path.open() as f:
        schemas = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))["components"]["schemas"]
    keep: dict[str, Any] = {}
    todo = list(ROOTS)
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        keep[name] = schemas[name]
        todo.extend(_refs(schemas[name]) - keep.keys())
    return {"source": spec_path.name, "schemas": dict(sorted(keep.items()))}


def render(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n"


if __name__ == "__main__":
    OUT.write_text(render(extract(Path(sys.argv[1]))))
    print(f"wrote {OUT.relative_to(ROOT)}")
