"""The external-driver protocol: what crosses the wire between the host and a driver process.

- :mod:`.payload`: the JSON payloads inside the messages (Lima's ``Info`` and
  instance JSON) and the ``--inspect-status`` form; imports neither grpc nor
  protobuf, so ``lima list`` can use it cheaply.
- :mod:`.rpc`: the hook <-> RPC table, the stubs and servicers of the
  protoc-generated modules in ``_gen`` (``scripts/generate-proto``), and the
  mapping of errors to gRPC statuses.

:mod:`lima_core.external` builds on this package; nothing here imports it.
"""
