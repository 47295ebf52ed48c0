"""docs/providers.md is generated from the provider YAML and must be kept in step with it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "provider_table.py"


def _script():
    spec = importlib.util.spec_from_file_location("provider_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_docs_providers_md_is_up_to_date():
    module = _script()
    current = (ROOT / "docs" / "providers.md").read_text(encoding="utf-8")
    assert current == module.render(), "docs/providers.md is stale: run `python scripts/provider_table.py`"
    assert module.main(["--check"]) == 0


def test_table_lists_every_provider_folder_and_type():
    text = (ROOT / "docs" / "providers.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip().strip("`"): line for line in text.splitlines()
            if line.startswith("| `") and line.count("|") == 11}
    for path in sorted((ROOT / "providers" / "definitions").glob("*/*.yaml")):
        if path.stem != path.parent.name:
            continue
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        row = rows[data["provider"]]
        cells = [c.strip() for c in row.split("|")[3:9]]
        for cell, model_type in zip(cells, ["llm", "text-embedding", "rerank", "speech2text", "tts", "moderation"]):
            assert (cell != "—") == (model_type in data["supported_model_types"]), (data["provider"], model_type)


def test_render_reflects_a_yaml_change(tmp_path):
    module = _script()
    source = ROOT / "providers" / "definitions" / "groq"
    target = tmp_path / "groq"
    for path in source.rglob("*"):
        if path.is_file():
            (target / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            (target / path.relative_to(source)).write_bytes(path.read_bytes())
    before = module.render(tmp_path)
    (target / "llm" / "llama-3.1-8b-instant.yaml").unlink()
    after = module.render(tmp_path)
    row = "| `llama-3.1-8b-instant` | llm |"
    assert row in before and row not in after
    assert "| 4 | — | — | 2 |" in after


def test_check_flag_fails_on_a_stale_file(tmp_path, monkeypatch, capsys):
    module = _script()
    stale = tmp_path / "providers.md"
    stale.write_text("# Providers\n\nhand-edited\n", encoding="utf-8")
    monkeypatch.setattr(module, "OUTPUT", stale)
    monkeypatch.setattr(module, "ROOT", tmp_path)
    assert module.main(["--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    assert module.main([]) == 0 and module.main(["--check"]) == 0  # regenerating fixes it


def test_model_rows_carry_context_features_and_prices_from_the_yaml():
    text = _script().render()
    assert ("| `deepseek-v4-flash` | llm | 1000000 | agent-thought, tool-call, multi-tool-call, stream-tool-call "
            "| 1 / 2 RMB |") in text
    assert "| `mistral-embed` | text-embedding | 8192 | — | 0.1 / — USD |" in text
    # OpenAI's gpt-4o: 2.50 / 10.00 USD per 1M tokens, written in the YAML per 1M (unit 0.000001).
    assert "| `gpt-4o` | llm | 128000 |" in text and "| 2.5 / 10 USD |" in text


def test_endpoint_rows_describe_url_layout_auth_and_credential_check():
    rows = {line.split("|")[1].strip().strip("`"): line for line in _script().render().splitlines()
            if line.startswith("| `") and line.count("|") == 6}
    assert "api-key/bearer (by `auth_method`)" in rows["azure_openai"]
    assert "from `openai_api_base`" in rows["azure_openai"]
    assert "bearer (zhipu_jwt)" in rows["zhipuai"]
    assert "GET /models/{id}" in rows["xinference"] and "from `server_url` + `/v1`" in rows["xinference"]
    assert "`https://api.siliconflow.cn/v1` or `https://api.siliconflow.com/v1` (by `use_international_endpoint`)" \
        in rows["siliconflow"]
    assert "chat `deepseek-v4-flash`" in rows["deepseek"]
