"""Several people in one Chromium, each in a browser context of their own
(cookies apart), with what each page logged: for tests where a class, its
teacher and a reviewer work at once; and waiting for an image's consensus,
which the worker makes in the background."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from django.db import connections
from playwright.sync_api import Page

from backend.quality.models import ImageConsensus
from tests.live import CHROMIUM, CHROMIUM_ARGS, missing_component


@dataclass
class Person:
    """One user's page, in a browser context of their own, and what it logged."""

    username: str
    page: Page
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def watched(person: Person) -> Person:
    """Keep what the page logs: console lines and uncaught exceptions."""
    person.page.on("console", lambda m: person.console.append(f"{m.type}: {m.text}"))
    person.page.on("pageerror", lambda exc: person.errors.append(str(exc)))
    return person


@contextmanager
def crowd(usernames: tuple[str, ...]) -> Iterator[dict[str, Person]]:
    """A page per username; at the end, their consoles are printed (pytest shows
    them when the test failed) and no page may have broken the
    Content-Security-Policy or thrown. Set DJANGO_ALLOW_ASYNC_UNSAFE first:
    the test uses the ORM beside Playwright's loop."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        missing_component(f"Chromium is not installed at {CHROMIUM}")
    found: dict[str, Person] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            for username in usernames:
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                context.set_default_timeout(30_000)
                found[username] = watched(Person(username, context.new_page()))
            yield found
        finally:
            for person in found.values():
                print(f"===== {person.username}'s console =====\n" + "\n".join(person.console))
            browser.close()
            connections.close_all()
    for person in found.values():
        violations = [line for line in person.console if "Content Security Policy" in line]
        assert not violations, violations
        assert person.errors == [], person.errors


CONSENSUS_WAIT_S = 60.0


def consensus_of(image: int) -> ImageConsensus:
    """The image's consensus, once the worker (or the request) has made it."""
    deadline = time.monotonic() + CONSENSUS_WAIT_S
    while (found := ImageConsensus.objects.filter(image_id=image).first()) is None:
        assert time.monotonic() < deadline, "no consensus was computed"
        time.sleep(0.2)
    return found
