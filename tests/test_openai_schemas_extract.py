"""The OpenAI schemas the Responses mock validates against are an extract of the official OpenAPI
document (tests/mocks/openai_schemas.json): it must be what the extractor makes of the
reference document, and must hold every schema the mock names."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.mocks.openai_responses import _EVENT_SCHEMAS
from tests.mocks.specs import SCHEMAS

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "specs" / "openai-openapi.yaml"


def _extractor():
    spec = importlib.util.spec_from_file_location("extract_openai_schemas", ROOT / "scripts" / "extract_openai_schemas.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_extract_holds_every_schema_the_mock_names():
    schemas = json.loads(SCHEMAS.read_text())["schemas"]
    named = {"CreateResponse", "Response", "ResponseErrorEvent", *_EVENT_SCHEMAS.values()}
    assert named <= set(_extractor().ROOTS) and named <= schemas.keys()


def test_the_extract_is_current_with_the_reference_document():
    if not REFERENCE.exists():
        pytest.skip("the reference folder is not beside this checkout (CI's clean clone)")
    extractor = _extractor()
    assert extractor.render(extractor.extract(REFERENCE)) == SCHEMAS.read_text(), \
        "run: python scripts/extract_openai_schemas.py ../shared/specs/openai-openapi.yaml"
