"""Command line: `edgeproxy [serve]`, `check-config PATH`, `print-default-config`, `schema`,
`hash-key`, `inject` (the sidecar injection webhook, or `--dry-run` on manifests)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from edgeproxy.config import default_config_text, load
from edgeproxy.config_reader import ConfigError
from edgeproxy.config_watch import digest
from edgeproxy.injector import command as inject_command


def _count(text: str) -> int:
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {text}")
    return number


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeproxy", description="LLM API sidecar proxy")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="run the proxy (the default command)")
    serve.add_argument(
        "--config",
        help="YAML file (default: $EDGEPROXY_CONFIG, else the embedded defaults)",
    )
    serve.add_argument(
        "--workers",
        type=_count,
        help="processes serving the port together (default: server.workers)",
    )
    # How a pod's supervisor starts its workers (edgeproxy.workers); not for people.
    serve.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    serve.add_argument("--pod-dir", help=argparse.SUPPRESS)
    check = commands.add_parser("check-config", help="validate a configuration file")
    check.add_argument("path")
    commands.add_parser("print-default-config", help="print the embedded defaults")
    schema = commands.add_parser(
        "schema", help="print the configuration's JSON Schema (or its reference, or the chart's)"
    )
    schema.add_argument(
        "--format",
        choices=SCHEMA_FORMATS,
        default="json",
        help="json: the JSON Schema; markdown: docs/configuration.md; "
        "helm-values: the chart's values.schema.json",
    )
    hash_key = commands.add_parser(
        "hash-key",
        help="print the sha256 of a virtual key read from standard input, for auth.keys[].hash",
    )
    hash_key.add_argument(
        "--new", action="store_true", help="make a new random key; print it, then its hash"
    )
    inject_command.add_parser(commands)
    return parser


def _hash_key(new: bool) -> int:
    """The key comes from standard input, never the command line, which `ps` and shell
    histories show."""
    from edgeproxy.security.auth import hash_key, new_key

    if new:
        key = new_key()
        print(key)
    else:
        key = sys.stdin.readline().strip()
        if not key:
            print("edgeproxy hash-key: give the key on standard input", file=sys.stderr)
            return 2
    print(f"sha256:{hash_key(key)}")
    return 0


SCHEMA_FORMATS = ("json", "markdown", "helm-values")


def schema_text(form: str) -> str:
    """What `edgeproxy schema --format FORM` prints: the files `make config-reference` writes."""
    from edgeproxy.config_docs import configuration_reference
    from edgeproxy.config_schema import config_schema, helm_values_schema

    if form == "markdown":
        return configuration_reference()
    schema = helm_values_schema() if form == "helm-values" else config_schema()
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def _report(err: ConfigError) -> int:
    print("edgeproxy: invalid configuration:", file=sys.stderr)
    for problem in err.problems:
        print(f"  {problem}", file=sys.stderr)
    return 1


def _serve(args: argparse.Namespace) -> int:
    import uvloop

    from edgeproxy.app import serve
    from edgeproxy.telemetry.logging import configure

    path = getattr(args, "config", None) or os.environ.get("EDGEPROXY_CONFIG") or None
    # Before the read: a ConfigMap swapped while the proxy starts is then reloaded.
    seen = digest(Path(path)) if path is not None else None
    try:
        config = load(path, os.environ)
    except ConfigError as err:
        return _report(err)
    configure(config.logging.level, config.logging.format, config.secrets())
    worker = None
    if getattr(args, "worker_index", None) is not None:
        from edgeproxy.worker import WorkerRole, die_with_parent

        die_with_parent()
        worker = WorkerRole(args.worker_index, Path(args.pod_dir))
    elif (workers := getattr(args, "workers", None) or config.server.workers) > 1:
        from edgeproxy.workers import run_pod

        return run_pod(config, path, workers)
    uvloop.run(serve(config, path, worker, seen))
    return 0


def _check_config(args: argparse.Namespace) -> int:
    try:
        config = load(args.path, os.environ)
    except ConfigError as err:
        return _report(err)
    print(f"{args.path}: ok ({len(config.providers)} providers, {len(config.models)} models)")
    return 0


def _printed(text: str) -> int:
    sys.stdout.write(text)
    return 0


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "check-config": _check_config,
    "hash-key": lambda args: _hash_key(args.new),
    "inject": inject_command.run,
    "schema": lambda args: _printed(schema_text(args.format)),
    "print-default-config": lambda _: _printed(default_config_text()),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = _COMMANDS.get(args.command)
    if command is None:  # `serve`, the default
        return _serve(args)
    return command(args)
