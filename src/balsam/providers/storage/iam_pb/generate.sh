#!/bin/sh
# Regenerates iam_pb2.py, iam_pb2.pyi and iam_pb2_grpc.py from iam.proto with
# grpcio-tools (a test extra). Run from anywhere.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../../../.." && pwd)   # the folder holding the balsam package
python=${PYTHON:-"$src/../.venv/bin/python"}
cd "$src"
"$python" -m grpc_tools.protoc --proto_path=. \
  --python_out=. --pyi_out=. --grpc_python_out=. \
  balsam/providers/storage/iam_pb/iam.proto
