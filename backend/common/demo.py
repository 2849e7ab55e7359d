"""The demo account: `seed_demo` creates it, `serve` tells the user about it.

Shared by both so that what `make run` prints is what works. DEMO_PASSWORD in
the environment replaces the default password.
"""

from backend.env import env_str

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-password"


def demo_password() -> str:
    return env_str("DEMO_PASSWORD") or DEMO_PASSWORD
