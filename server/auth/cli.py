"""``python -m server keys|credentials|usage ...``: the admin operations without a running server.

Works straight on the configured store (SQLite under ``storage.data_dir`` or ``storage.url``), so the
first admin key can be created before the server ever ran. A running server sees changes within
``auth.refresh_seconds``. Secrets are printed once (key creation, rotation) and never otherwise;
stored credentials print masked.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from ..config import Config, ConfigError, load_config
from . import build_gate
from .crypto import CredentialsUnreadable, KeyringError, generate_key_spec
from .keys import BUDGET_PERIODS, CallerKey, KeySpecError, Scopes, check_key_spec

COMMANDS = ("keys", "credentials", "usage")


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _pairs(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"expected NAME=VALUE, got {item!r}")
        out[name] = value
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m server", description="Model Runtime admin commands")
    p.add_argument("--config", default=None, help="YAML config file (default: built-in defaults)")
    sub = p.add_subparsers(dest="command", required=True)

    keys = sub.add_parser("keys", help="caller keys").add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", help="create a key; prints its secret once")
    create.add_argument("--name", required=True)
    create.add_argument("--admin", action="store_true", help="may use the Admin service and every scope")
    create.add_argument("--providers", type=_csv, default=(), help="glob patterns, comma-separated")
    create.add_argument("--models", type=_csv, default=(), help="globs over 'provider/model' or 'model'")
    create.add_argument("--model-types", type=_csv, default=(), help="llm, text-embedding, rerank, ...")
    create.add_argument("--credentials", type=_csv, default=(), help="stored-credential names (globs) allowed")
    create.add_argument("--deny-raw-credentials", action="store_true", help="refuse credentials sent per call")
    create.add_argument("--rpm", type=int, default=0, help="requests per minute (0 = unlimited)")
    create.add_argument("--tpm", type=int, default=0, help="tokens per minute (0 = unlimited)")
    create.add_argument("--budget-usd", default="", help="spend budget in USD per period")
    create.add_argument("--budget-period", choices=BUDGET_PERIODS, default="month")
    create.add_argument("--expires-in-days", type=float, default=0)
    create.add_argument("--meta", action="append", default=[], help="NAME=VALUE, repeatable")
    create.add_argument("--cert-identity", default="", help="client-certificate common name (mTLS)")
    listing = keys.add_parser("list", help="list keys (never secrets)")
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    keys.add_parser("revoke", help="revoke a key").add_argument("id")
    keys.add_parser("rotate", help="new secret for a key; prints it once").add_argument("id")

    creds = sub.add_parser("credentials", help="stored provider credentials").add_subparsers(
        dest="action", required=True)
    put = creds.add_parser("put", help="validate, encrypt and store provider credentials")
    put.add_argument("name")
    put.add_argument("--provider", required=True)
    put.add_argument("--set", action="append", default=[], help="FIELD=VALUE, repeatable")
    put.add_argument("--json", default="", help="a JSON object of fields ('-' = standard input)")
    put.add_argument("--no-validate", action="store_true", help="skip the provider's own check")
    creds.add_parser("list", help="list stored credentials, secrets masked")
    creds.add_parser("delete", help="delete stored credentials").add_argument("name")
    creds.add_parser("reencrypt", help="re-encrypt everything under the first encryption key")
    creds.add_parser("genkey", help="print a new encryption key entry '<id>:<base64>'").add_argument(
        "--id", default="")

    usage = sub.add_parser("usage", help="usage totals per day, key and model")
    usage.add_argument("--key", default="")
    usage.add_argument("--provider", default="")
    usage.add_argument("--model", default="")
    usage.add_argument("--from", dest="start", default="", help="first UTC day, YYYY-MM-DD")
    usage.add_argument("--to", dest="end", default="", help="last UTC day, YYYY-MM-DD")
    return p


def key_json(key: CallerKey) -> dict[str, Any]:
    return {
        "id": key.id, "name": key.name, "prefix": key.prefix, "admin": key.admin, "scopes": key.scopes.to_json(),
        "requests_per_minute": key.requests_per_minute, "tokens_per_minute": key.tokens_per_minute,
        "budget_usd": str(key.budget_usd) if key.budget_usd is not None else None,
        "budget_period": key.budget_period, "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "metadata": key.metadata, "cert_identity": key.cert_identity, "revoked": key.revoked,
    }


def _print(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


async def _run(args: argparse.Namespace, config: Config) -> int:
    gate = await build_gate(config, with_ledger=False)
    store = gate.store
    try:
        if args.command == "keys":
            if args.action == "create":
                expires = (datetime.now(UTC) + timedelta(days=args.expires_in_days)) if args.expires_in_days else None
                scopes = Scopes(args.providers, args.models, args.model_types, args.credentials,
                                not args.deny_raw_credentials)
                metadata = _pairs(args.meta)
                budget = check_key_spec(args.name, requests_per_minute=args.rpm, tokens_per_minute=args.tpm,
                                        budget_usd=args.budget_usd, budget_period=args.budget_period,
                                        expires_at=expires, cert_identity=args.cert_identity, metadata=metadata,
                                        scopes=scopes)
                key, secret = await store.create_key(
                    args.name, admin=args.admin, scopes=scopes, expires_at=expires, requests_per_minute=args.rpm,
                    tokens_per_minute=args.tpm, budget_usd=budget, budget_period=args.budget_period,
                    metadata=metadata, cert_identity=args.cert_identity)
                _print({**key_json(key), "secret": secret})
                print("The secret is shown only now: store it safely.", file=sys.stderr)
            elif args.action == "list":
                _print([key_json(k) for k in await store.keys(include_revoked=args.all)])
            elif args.action == "revoke":
                revoked = await store.revoke_key(args.id)
                if revoked is None:
                    raise SystemExit(f"no key has the id {args.id!r}")
                _print(key_json(revoked))
            elif args.action == "rotate":
                rotated = await store.rotate_key(args.id)
                if rotated is None:
                    raise SystemExit(f"no live key has the id {args.id!r}")
                _print({**key_json(rotated[0]), "secret": rotated[1]})
        elif args.command == "credentials":
            if args.action == "genkey":
                print(generate_key_spec(args.id))
            elif args.action == "put":
                values: dict[str, Any] = {}
                if args.json:
                    values = json.load(sys.stdin) if args.json == "-" else json.loads(args.json)
                values.update(_pairs(args.set))
                from ..app import build_runtime  # the provider's own check runs in this process

                runtime = build_runtime(config)
                try:
                    masked = await gate.put_credentials(runtime, args.name, args.provider, values,
                                                        validate=not args.no_validate)
                finally:
                    await runtime.egress.aclose()
                _print({"name": args.name, "provider": args.provider, "credentials": masked})
            elif args.action == "list":
                _print([{"name": r.name, "provider": r.provider, "credentials": r.masked,
                         "encryption_key_id": r.key_id} for r in await store.credentials()])
            elif args.action == "delete":
                if not await store.delete_credentials(args.name):
                    raise SystemExit(f"no stored credentials are named {args.name!r}")
            elif args.action == "reencrypt":
                print(f"re-encrypted {await gate.reencrypt()} stored credentials")
        elif args.command == "usage":
            _print([t.__dict__ if hasattr(t, "__dict__") else {f: getattr(t, f) for f in t.__slots__}
                    for t in await store.usage(args.key, args.provider, args.model, args.start, args.end)])
        return 0
    finally:
        await gate.close()


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        config = load_config(args.config)
        return asyncio.run(_run(args, config))
    except (ConfigError, KeyringError, CredentialsUnreadable, KeySpecError) as exc:
        print(f"model-runtime: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from engine.errors import RuntimeFault

        if isinstance(exc, RuntimeFault):
            print(f"model-runtime: {exc.reason}: {exc.description}", file=sys.stderr)
            return 1
        raise
