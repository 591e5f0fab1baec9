#!/usr/bin/env python3
# A gRPC server shaped like Qdrant, on grpcio (gRPC C-core, the same stack as the real Python
# clients): `/qdrant.Points/Search` over h2c (an insecure port). No protoc: generic handlers
# take and return bytes, and the few protobuf fields are encoded by hand (field numbers from
# Qdrant's points_service.proto / points.proto). A search of an unknown collection fails with
# NOT_FOUND, as Qdrant's does.
#
# Usage: grpc_vector_server.py --port-file FILE
import argparse
import os
import struct
import sys
from concurrent import futures

import grpc

COLLECTIONS = {
    "support-tickets": [
        (7, 0.92, "Ticket 7: the export job fails when the bucket name has a dot in it."),
        (12, 0.81, "Ticket 12: password reset emails arrive after the link has expired."),
    ],
}


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number, wire_type, payload):
    return varint(number << 3 | wire_type) + payload


def length_delimited(number, data):
    return field(number, 2, varint(len(data)) + data)


def read_fields(message):
    """(field number, wire type, value) of a message's top-level fields."""
    i = 0
    while i < len(message):
        key, i = read_varint(message, i)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, i = read_varint(message, i)
        elif wire_type == 2:
            length, i = read_varint(message, i)
            value, i = message[i:i + length], i + length
        elif wire_type == 5:
            value, i = message[i:i + 4], i + 4
        elif wire_type == 1:
            value, i = message[i:i + 8], i + 8
        else:
            raise ValueError(f"wire type {wire_type}")
        yield number, wire_type, value


def read_varint(data, i):
    shift = value = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7


def scored_point(point_id, score, text):
    # ScoredPoint { PointId id = 1 { uint64 num = 1 }; map<string, Value> payload = 2;
    # float score = 3; }. The payload entry "text" is a Value { string string_value = 3 }.
    value = length_delimited(3, text.encode())
    entry = length_delimited(1, b"text") + length_delimited(2, value)
    return (length_delimited(1, field(1, 0, varint(point_id)))
            + length_delimited(2, entry)
            + field(3, 5, struct.pack("<f", score)))


def search(request, context):
    fields = {number: value for number, _, value in read_fields(request)}
    collection = fields.get(1, b"").decode()
    limit = fields.get(4, 10)
    points = COLLECTIONS.get(collection)
    if points is None:
        context.abort(grpc.StatusCode.NOT_FOUND, f"Collection `{collection}` doesn't exist!")
    # SearchResponse { repeated ScoredPoint result = 1; double time = 2; }
    response = b"".join(length_delimited(1, scored_point(*p)) for p in points[:limit])
    return response + field(2, 1, struct.pack("<d", 0.0004))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port-file", required=True)
    args = parser.parse_args()
    handler = grpc.method_handlers_generic_handler("qdrant.Points", {
        "Search": grpc.unary_unary_rpc_method_handler(search),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(port))
    os.rename(tmp, args.port_file)
    print(f"grpc_vector_server: listening on {port}", file=sys.stderr)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
