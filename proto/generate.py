"""Regenerate the Python code for the .proto files in this folder.

    python proto/generate.py            # rewrite chat_pb2.py, cluster_pb2.py (+ .pyi)
    python proto/generate.py --check    # exit 1 if the checked-in code is stale

The generated modules are checked in so that installing chatcluster needs no
protobuf compiler; this script is the one way to refresh them, and
tests/unit/test_proto_generated.py fails when they drift from the .proto files.
The compiler is the one bundled with grpcio-tools, pinned in pyproject.toml's
`dev` extra, so that everyone generates byte-identical code.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTOS = ("chat.proto", "cluster.proto")
# The .proto files name each other as chatcluster/proto/<file>, the import
# path the installed package has, so generated imports are package-absolute.
VIRTUAL_DIR = "chatcluster/proto"


def generate(out_dir: Path) -> dict[str, bytes]:
    """Run protoc into out_dir and return {file name: content} of what it wrote."""
    from grpc_tools import protoc  # dev dependency, imported only here

    args = [
        "protoc",
        f"-I{VIRTUAL_DIR}={HERE}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        *(f"{VIRTUAL_DIR}/{name}" for name in PROTOS),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed: " + " ".join(args))
    produced = out_dir / VIRTUAL_DIR
    return {p.name: p.read_bytes() for p in sorted(produced.iterdir()) if p.suffix in (".py", ".pyi")}


def stale_files() -> list[str]:
    """Names of generated files whose checked-in copy differs from a fresh run."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
    return [name for name, data in fresh.items()
            if not (HERE / name).exists() or (HERE / name).read_bytes() != data]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args()
    if args.check:
        stale = stale_files()
        for name in stale:
            print(f"stale: proto/{name}")
        return 1 if stale else 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in generate(Path(tmp)).items():
            (HERE / name).write_bytes(data)
            print(f"wrote proto/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
