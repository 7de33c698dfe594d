"""The client protocol (chat.proto) and the gateway<->shard envelopes (cluster.proto).

The *_pb2.py modules are generated: run `python proto/generate.py` after editing a .proto file.
"""
