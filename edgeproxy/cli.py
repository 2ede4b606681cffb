"""Command line: `edgeproxy [serve]`, `check-config PATH`, `print-default-config`, `hash-key`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from edgeproxy.config import default_config_text, load
from edgeproxy.config_reader import ConfigError


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
    hash_key = commands.add_parser(
        "hash-key",
        help="print the sha256 of a virtual key read from standard input, for auth.keys[].hash",
    )
    hash_key.add_argument(
        "--new", action="store_true", help="make a new random key; print it, then its hash"
    )
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


def _report(err: ConfigError) -> int:
    print("edgeproxy: invalid configuration:", file=sys.stderr)
    for problem in err.problems:
        print(f"  {problem}", file=sys.stderr)
    return 1


def _serve(args: argparse.Namespace) -> int:
    import uvloop

    from edgeproxy.app import serve
    from edgeproxy.telemetry.logging import configure

    path = getattr(args, "config", None)
    try:
        config = load(path or os.environ.get("EDGEPROXY_CONFIG") or None, os.environ)
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
    uvloop.run(serve(config, worker))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        try:
            config = load(args.path, os.environ)
        except ConfigError as err:
            return _report(err)
        print(f"{args.path}: ok ({len(config.providers)} providers, {len(config.models)} models)")
        return 0
    if args.command == "hash-key":
        return _hash_key(args.new)
    if args.command == "print-default-config":
        sys.stdout.write(default_config_text())
        return 0
    return _serve(args)
