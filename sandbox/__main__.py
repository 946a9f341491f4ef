"""`python -m sandbox serve --port-file F [--state-dir D] [--seed N] [--size N]`.

Runs the sandbox as its own process (the demo and `func start` need it outside pytest): writes the
`SandboxInfo` JSON to the port file once the servers accept connections, optionally loads
`sandbox.datagen` data, and serves until SIGTERM/SIGINT. With `--state-dir` the store contents are
restored from and saved to `D/state.json`, so a demo can stop and resume.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from sandbox.server import Sandbox, SandboxConfig

STATE_FILE = "state.json"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the HTTPS stand-ins until SIGTERM/SIGINT")
    serve.add_argument("--port-file", required=True, type=Path, help="write the SandboxInfo JSON here")
    serve.add_argument("--state-dir", type=Path, default=None, help="restore/save store contents here")
    serve.add_argument("--seed", type=int, default=1)
    serve.add_argument("--size", type=int, default=0, help="load sandbox.datagen data of this size")
    serve.add_argument("--catalogue-dir", type=Path, default=None)
    return parser


def _write_atomic(path: Path, text: str) -> None:
    """Readers poll the port file; they must never see it half written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def serve(args: argparse.Namespace) -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    config = SandboxConfig(seed=args.seed, catalogue_dir=args.catalogue_dir)
    state_file = args.state_dir / STATE_FILE if args.state_dir else None
    with Sandbox(config) as sb:
        if state_file is not None and state_file.exists():
            state = json.loads(state_file.read_text(encoding="utf-8"))
            sb.dataverse.restore(state.get("dataverse", {}))
            sb.finops.restore(state.get("finops", {}))
        elif args.size:
            from sandbox.datagen import generate

            sb.load(generate(size=args.size, seed=args.seed))
        _write_atomic(args.port_file, json.dumps(sb.info.as_dict(), indent=2))
        print(f"sandbox serving: dataverse {sb.info.dataverse_url}, finops {sb.info.finops_url}", flush=True)
        try:
            while not stop.wait(0.5):
                pass
        finally:
            if state_file is not None:
                state = {"dataverse": sb.dataverse.snapshot(), "finops": sb.finops.snapshot()}
                _write_atomic(state_file, json.dumps(state))
            args.port_file.unlink(missing_ok=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
