"""A real OTLP receiver for the export tests (tests/otlp_export.rs).

Serves OTLP/HTTP protobuf (POST /v1/traces, /v1/logs) and OTLP/gRPC (TraceService and
LogsService) with the official `opentelemetry-proto` definitions (PyPI, pinned in
scripts/setup.sh), decodes every export request, and appends one JSON object per span and per
log record to the output file, flattened so a test can assert names, ids, parent links,
attributes and resources:

  {"signal": "span", "transport": "http"|"grpc", "resource": {...}, "scope": "...",
   "name": "...", "kind": "SPAN_KIND_CLIENT", "trace_id": hex, "span_id": hex,
   "parent_span_id": hex or "", "start_ns": int, "end_ns": int, "attributes": {...},
   "events": [{"name": "...", "attributes": {...}}], "status": {"code": int, "message": "..."}}
  {"signal": "log", "transport": ..., "resource": {...}, "event_name": "...",
   "severity_number": int, "severity_text": "...", "body": ..., "trace_id": hex,
   "span_id": hex, "attributes": {...}}

With `--tls-cert FILE --tls-key FILE` both serve TLS with that certificate (Python's ssl for
HTTP, grpcio's ssl_server_credentials for gRPC), and with `--tls-client-ca FILE` too they ask
for a client certificate signed by that CA (mutual TLS).

Prints `listening http=PORT grpc=PORT` once both listen (port 0 picks a free one).
Usage: otlp_receiver.py --out FILE [--http-port N] [--grpc-port N]
                        [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]]
"""

import argparse
import json
import ssl
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

LOCK = threading.Lock()


def any_value(value):
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)


def attributes(kvs):
    return {kv.key: any_value(kv.value) for kv in kvs}


class Output:
    def __init__(self, path):
        self.file = open(path, "a", encoding="utf-8")

    def write(self, records):
        with LOCK:
            for record in records:
                self.file.write(json.dumps(record, sort_keys=True) + "\n")
            self.file.flush()

    def traces(self, request, transport):
        records = []
        for resource_spans in request.resource_spans:
            resource = attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    records.append({
                        "signal": "span",
                        "transport": transport,
                        "resource": resource,
                        "scope": scope_spans.scope.name,
                        "name": span.name,
                        "kind": trace_pb2.Span.SpanKind.Name(span.kind),
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "start_ns": span.start_time_unix_nano,
                        "end_ns": span.end_time_unix_nano,
                        "attributes": attributes(span.attributes),
                        "events": [
                            {"name": e.name, "attributes": attributes(e.attributes)}
                            for e in span.events
                        ],
                        "status": {"code": span.status.code, "message": span.status.message},
                    })
        self.write(records)

    def logs(self, request, transport):
        records = []
        for resource_logs in request.resource_logs:
            resource = attributes(resource_logs.resource.attributes)
            for scope_logs in resource_logs.scope_logs:
                for log in scope_logs.log_records:
                    records.append({
                        "signal": "log",
                        "transport": transport,
                        "resource": resource,
                        "event_name": log.event_name,
                        "severity_number": log.severity_number,
                        "severity_text": log.severity_text,
                        "body": any_value(log.body),
                        "trace_id": log.trace_id.hex(),
                        "span_id": log.span_id.hex(),
                        "attributes": attributes(log.attributes),
                    })
        self.write(records)


def http_handler(output):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path == "/v1/traces":
                request = trace_service_pb2.ExportTraceServiceRequest()
                request.ParseFromString(body)
                output.traces(request, "http")
                reply = trace_service_pb2.ExportTraceServiceResponse()
            elif self.path == "/v1/logs":
                request = logs_service_pb2.ExportLogsServiceRequest()
                request.ParseFromString(body)
                output.logs(request, "http")
                reply = logs_service_pb2.ExportLogsServiceResponse()
            else:
                self.send_error(404)
                return
            data = reply.SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    return Handler


class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, output):
        self.output = output

    def Export(self, request, context):
        self.output.traces(request, "grpc")
        return trace_service_pb2.ExportTraceServiceResponse()


class LogsService(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, output):
        self.output = output

    def Export(self, request, context):
        self.output.logs(request, "grpc")
        return logs_service_pb2.ExportLogsServiceResponse()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--http-port", type=int, default=0)
    parser.add_argument("--grpc-port", type=int, default=0)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--tls-client-ca")
    args = parser.parse_args()
    output = Output(args.out)
    http = ThreadingHTTPServer(("127.0.0.1", args.http_port), http_handler(output))
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        if args.tls_client_ca:
            context.load_verify_locations(args.tls_client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
        # The handshake runs when the request's thread first reads, so a client that refuses
        # the certificate costs that thread, not the server.
        http.socket = context.wrap_socket(
            http.socket, server_side=True, do_handshake_on_connect=False
        )
        # A refused handshake is what the tests make happen: not worth a traceback.
        http.handle_error = lambda request, client_address: None
    threading.Thread(target=http.serve_forever, daemon=True).start()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceService(output), server)
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(LogsService(output), server)
    if args.tls_cert:
        def read(path):
            with open(path, "rb") as file:
                return file.read()

        client_ca = read(args.tls_client_ca) if args.tls_client_ca else None
        credentials = grpc.ssl_server_credentials(
            [(read(args.tls_key), read(args.tls_cert))],
            root_certificates=client_ca,
            require_client_auth=client_ca is not None,
        )
        grpc_port = server.add_secure_port(f"127.0.0.1:{args.grpc_port}", credentials)
    else:
        grpc_port = server.add_insecure_port(f"127.0.0.1:{args.grpc_port}")
    server.start()
    print(f"listening http={http.server_address[1]} grpc={grpc_port}", flush=True)
    # Until the test kills it (or closes stdin).
    sys.stdin.read()
    server.stop(0)
    http.shutdown()


if __name__ == "__main__":
    main()
