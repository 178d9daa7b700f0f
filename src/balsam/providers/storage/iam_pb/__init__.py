"""Generated gRPC stubs for SeaweedFS's filer IAM service (see ``iam.proto``).

Do not edit ``iam_pb2*.py``/``.pyi`` by hand: ``generate.sh`` regenerates them.
"""
