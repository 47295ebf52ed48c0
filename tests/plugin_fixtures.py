"""Build Dify plugin-layout fixtures at test time from the runtime's own provider YAML.

A published plugin (as in ``langgenius/dify-official-plugins``) has ``manifest.yaml`` naming
``provider/<file>.yaml``; that YAML lists its models through ``models:`` globs and ``position``
files and carries no ``runtime:`` block. :func:`make_plugin` rewrites a built-in provider folder
into that shape (optionally renamed, under another file name, packaged as a ``.difypkg``), so the
tests exercise the packaging without copying anyone's files.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from providers import DEFINITIONS

Edit = Callable[[dict[str, Any]], None]


def _dump(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


def make_plugin(dest: Path, source: str, *, provider: str | None = None, file_name: str | None = None,
                keep_runtime: bool = False, edit_provider: Edit | None = None,
                edit_models: dict[str, Edit] | None = None, models_block: bool = True) -> Path:
    """Write built-in provider ``source`` to ``dest`` as a Dify plugin; returns ``dest``.

    ``provider`` renames it (the YAML's ``provider:``), ``file_name`` names ``provider/<file>.yaml``
    (default: the provider name), ``edit_provider``/``edit_models[model]`` change the YAML first.
    """
    src = DEFINITIONS / source
    raw = yaml.safe_load((src / f"{source}.yaml").read_text())
    name = provider or source
    raw["provider"] = name
    if not keep_runtime:
        raw.pop("runtime", None)
    blocks: dict[str, Any] = {}
    for type_dir in sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith("_")):
        for model_file in sorted(type_dir.glob("*.yaml")):
            data = yaml.safe_load(model_file.read_text())
            if not model_file.name.startswith("_") and edit_models and data.get("model") in edit_models:
                edit_models[data["model"]](data)
            _dump(dest / "models" / type_dir.name / model_file.name, data)
        blocks[type_dir.name] = {"predefined": [f"models/{type_dir.name}/*.yaml"],
                                 "position": f"models/{type_dir.name}/_position.yaml"}
    if models_block:
        raw["models"] = blocks
    raw["extra"] = {"python": {"provider_source": f"provider/{name}.py"}}
    if edit_provider:
        edit_provider(raw)
    provider_file = f"provider/{file_name or name}.yaml"
    _dump(dest / provider_file, raw)
    _dump(dest / "manifest.yaml", {
        "version": "0.0.1", "type": "plugin", "author": "tests", "name": name,
        "label": {"en_US": name}, "resource": {"memory": 268435456, "permission": {"model": {"enabled": True}}},
        "plugins": {"models": [provider_file]},
        "meta": {"version": "0.0.1", "arch": ["amd64"], "runner": {"language": "python", "version": "3.12",
                                                                    "entrypoint": "main"}},
    })
    return dest


def package(folder: Path, target: Path) -> Path:
    """Zip a plugin folder into a ``.difypkg`` (files at the archive's top level, as Dify packs)."""
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return target
