"""The lab's S3 stand-in: moto's threaded server with the lab's bucket made at start.

serve.py serve          listen on S3_LISTEN (0.0.0.0:5000), make S3_BUCKETS, run
serve.py ping           exit 0 once the server answers (the HEALTHCHECK)
serve.py list BUCKET    one JSON line per object: key, size, metadata
serve.py get BUCKET KEY the object's bytes on stdout
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import sys
import threading
from typing import Any

ENDPOINT = "http://127.0.0.1:5000"


def client() -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id="lab",
        aws_secret_access_key="lab",
    )


def serve() -> int:
    from moto.server import ThreadedMotoServer

    host, _, port = os.environ.get("S3_LISTEN", "0.0.0.0:5000").rpartition(":")
    server = ThreadedMotoServer(ip_address=host, port=int(port))
    server.start()
    s3 = client()
    for bucket in os.environ.get("S3_BUCKETS", "").split():
        s3.create_bucket(Bucket=bucket)
        print(f"s3: bucket {bucket} made", flush=True)
    print(f"s3: listening on {host}:{port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()
    return 0


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "serve"
    if command == "serve":
        return serve()
    if command == "ping":
        try:
            client().list_buckets()
        except Exception as error:  # a health check says no, whatever the cause
            print(f"s3: not answering: {type(error).__name__}", file=sys.stderr)
            return 1
        return 0
    if command == "list" and len(argv) == 2:
        paginator = client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=argv[1]):
            for item in page.get("Contents", []):
                head = client().head_object(Bucket=argv[1], Key=item["Key"])
                print(json.dumps({"key": item["Key"], "size": item["Size"],
                                  "metadata": head.get("Metadata", {})}))  # fmt: skip
        return 0
    if command == "entries" and len(argv) == 3:
        s3 = client()
        paginator = s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=argv[1], Prefix=argv[2]):
            for item in page.get("Contents", []):
                body = s3.get_object(Bucket=argv[1], Key=item["Key"])["Body"].read()
                for line in gzip.decompress(body).decode().splitlines():
                    print(json.dumps({"key": item["Key"], "entry": json.loads(line)}))
        return 0
    if command == "get" and len(argv) == 3:
        body = client().get_object(Bucket=argv[1], Key=argv[2])["Body"].read()
        sys.stdout.buffer.write(body)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
