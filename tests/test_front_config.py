"""Config mistakes refuse start-up with the nearest valid name; config/default.yaml documents every
key the models accept; empty server-side credentials are reported by name, never by value."""

from __future__ import annotations

import asyncio
import sys

import pytest
import yaml
from pydantic import BaseModel

from server.config import Config, ConfigError, load_config
from tests.server_process import ROOT, ServerProcess

DEFAULT = ROOT / "config" / "default.yaml"


@pytest.mark.parametrize(("text", "named", "suggested"), [
    ("egress:\n  allowed_cidr: ['127.0.0.1/32']\n", "'egress.allowed_cidr'", "'egress.allowed_cidrs'"),
    ("grcp:\n  port: 6000\n", "'grcp'", "'grpc'"),
    ("providers:\n  openai:\n    credential: {}\n", "'providers.openai.credential'", "'providers.openai.credentials'"),
    ("http:\n  max_connection: 5\n", "'http.max_connection'", "'http.max_connections'"),
])
def test_unknown_file_keys_are_refused_with_the_nearest_name(tmp_path, text, named, suggested):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert named in message and f"did you mean {suggested}?" in message and str(path) in message


@pytest.mark.parametrize(("var", "suggested"), [
    ("MODEL_RUNTIME_EGRES__ALLOWED_CIDRS", "MODEL_RUNTIME_EGRESS__ALLOWED_CIDRS"),
    ("MODEL_RUNTIME_GRPC__GRACE_SECOND", "MODEL_RUNTIME_GRPC__GRACE_SECONDS"),
    ("MODEL_RUNTIME_LOGLEVEL", "MODEL_RUNTIME_LOG_LEVEL"),
])
def test_unknown_environment_keys_are_refused(monkeypatch, var, suggested):
    monkeypatch.setenv(var, "1")
    with pytest.raises(ConfigError) as err:
        load_config(None)
    assert var in str(err.value) and f"did you mean {suggested}?" in str(err.value)


def test_top_level_environment_override(monkeypatch):
    monkeypatch.setenv("MODEL_RUNTIME_LOG_LEVEL", "DEBUG")
    assert load_config(None).log_level == "DEBUG"


async def test_the_server_refuses_to_start_with_one_clear_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("egress:\n  allowed_cidr: []\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", "--config", str(path), cwd=str(ROOT),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode != 0
    text = err.decode()
    assert "Traceback" not in text and "'egress.allowed_cidr'" in text and "'egress.allowed_cidrs'" in text


def _keys(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key path the config models accept (dict-valued fields such as providers count once)."""
    out = []
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        out.append(path)
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            out.extend(_keys(field.annotation, path))
    return out


def _documented(lines: list[str], path: tuple[str, ...]) -> bool:
    """The key's line is found inside its section, and it or the line above carries a comment."""
    start, end = 0, len(lines)
    for depth, part in enumerate(path):
        indent = "  " * depth
        found = next((i for i in range(start, end) if lines[i].startswith(f"{indent}{part}:")), None)
        if found is None:
            return False
        start, end = found + 1, next(
            (i for i in range(found + 1, end) if lines[i].strip() and not lines[i].lstrip().startswith("#")
             and len(lines[i]) - len(lines[i].lstrip()) <= len(indent)), end)
    line = start - 1
    return "#" in lines[line] or lines[line - 1].lstrip().startswith("#") or _is_section(path)


def _is_section(path: tuple[str, ...]) -> bool:
    field = Config.model_fields.get(path[0]) if len(path) == 1 else None
    return field is not None and isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)


def test_default_yaml_documents_every_key():
    data = yaml.safe_load(DEFAULT.read_text())
    lines = DEFAULT.read_text().splitlines()
    missing, bare = [], []
    for path in _keys(Config):
        parent = data
        for part in path[:-1]:
            parent = parent.get(part, {})
        if path[-1] not in parent:
            missing.append(".".join(path))
        elif not _documented(lines, path):
            bare.append(".".join(path))
    assert not missing, f"keys missing from config/default.yaml: {missing}"
    assert not bare, f"keys without a comment in config/default.yaml: {bare}"
    # and the documented values are the defaults
    assert load_config(DEFAULT).model_dump(exclude={"providers"}) == Config().model_dump(exclude={"providers"})


async def test_empty_server_credentials_are_reported_by_name_only(tmp_path):
    config = {"http": {"enabled": False}, "grpc": {"grace_seconds": 0.2, "drain_seconds": 0},
              "providers": {"openai": {"credentials": {"openai_api_key": "${FRONT_TEST_UNSET_KEY}",
                                                       "openai_organization": "org-visible-secret"}},
                            "anthropic": {"credentials": {"anthropic_api_key": "sk-ant-do-not-log"}}}}
    async with ServerProcess(tmp_path, config, env={"FRONT_TEST_UNSET_KEY": ""}) as server:
        code, _ = await server.terminate()
    assert code == 0
    warnings = [line for line in server.stderr.splitlines() if "WARNING" in line and "credentials" in line]
    assert len(warnings) == 1 and "providers.openai.credentials.openai_api_key" in warnings[0]
    assert "org-visible-secret" not in server.stderr and "sk-ant-do-not-log" not in server.stderr

