"""`python3 -m api`: serve the API on 127.0.0.1:$PORT until SIGTERM or SIGINT."""

from __future__ import annotations

import os
import signal
import sys
from http.server import ThreadingHTTPServer

from jobqueue import ConfigError, Queue, settings_from_env

from api.app import Api, handler_for


def main() -> int:
    try:
        settings = settings_from_env(os.environ)
        port = int(os.environ["PORT"])
    except ConfigError as error:
        print(f"api cannot start: {error}", file=sys.stderr, flush=True)
        return 2
    except (KeyError, ValueError):
        print(
            "api cannot start: PORT is not set to a number (set port: in devstack.yaml)",
            file=sys.stderr,
            flush=True,
        )
        return 2
    max_csv_bytes = int(os.environ.get("API_MAX_CSV_BYTES", "1000000"))
    api = Api(Queue(settings.db_path), settings.secret_key, max_csv_bytes)
    server = ThreadingHTTPServer(("127.0.0.1", port), handler_for(api))
    server.daemon_threads = True
    # serve_forever runs in this thread: raising from the handler ends it at once.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: sys.exit(0))
    print(f"api listening on http://127.0.0.1:{port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
