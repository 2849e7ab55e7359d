"""Container health check of the web service: GET /api/health/ on this host.

Healthy when the server answers with its health report, whether "ok" or
"degraded" (503): a missing worker is the worker container's own check.
The request names an allowed host and says it came through HTTPS, as the
reverse proxy would, so that the HTTPS redirect of production settings does
not answer instead of the app.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request


def allowed_host() -> str:
    for host in os.environ.get("ALLOWED_HOSTS", "").split(","):
        host = host.strip().lstrip(".")
        if host and host != "*":
            return host
    return "localhost"


def main() -> int:
    port = os.environ.get("PORT", "8000")
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/health/",
        headers={"Host": allowed_host(), "X-Forwarded-Proto": "https"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
    except urllib.error.HTTPError as error:
        if error.code != 503:
            print(f"health: HTTP {error.code}", file=sys.stderr)
            return 1
        body = error.read()
    except OSError as error:
        print(f"health: {error}", file=sys.stderr)
        return 1
    try:
        report = json.loads(body)
    except ValueError:
        print("health: the answer is not JSON", file=sys.stderr)
        return 1
    print(json.dumps(report))
    return 0 if report.get("status") in {"ok", "degraded"} else 1


if __name__ == "__main__":
    sys.exit(main())
