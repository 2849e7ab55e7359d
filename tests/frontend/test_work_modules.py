"""The work queue's browser modules that need no page, run under node: the
activity reporter (only active time and the session's prompts are
reported), and the instance store on a person's set (every load and create
names the set; a read-only set refuses changes and a 409 makes it so)."""

from __future__ import annotations

from pathlib import Path

from tests.frontend.test_modules import pytestmark, run_node  # noqa: F401

# A window, a document, localStorage and fetch: enough for the modules outside a
# browser (they touch them when used, not when imported, which runs first).
STUBS = """
globalThis.window = new EventTarget();
globalThis.document = { cookie: "csrftoken=abc" };
const kept = new Map();
globalThis.localStorage = {
  getItem: (k) => kept.get(k) ?? null,
  setItem: (k, v) => kept.set(k, v),
  removeItem: (k) => kept.delete(k),
};
const sent = [];
globalThis.fetch = async (path, options) => {
  sent.push({ path, method: options.method, body: options.body ? JSON.parse(options.body) : null });
  return { status: 200, text: async () => "{}" };
};
"""

ACTIVITY_SCRIPT = (
    STUBS
    + """
import { ActivityReporter } from "./maskroom/work/activity.js";
import { PromptSession } from "./maskroom/prompting/prompt_session.js";
let now = 1_000_000;
const session = new PromptSession({ assignment: 7 });
const reporter = new ActivityReporter({ assignmentId: 7, session, target: window, now: () => now });
reporter.stop(); // the test moves the clock itself
const step = (ms) => { for (let t = 0; t < ms; t += 1000) { now += 1000; reporter.tick(); } };
step(20_000);                                       // 20 s active (the page just opened)
session.addPoint(1, 2); session.setBox(0, 0, 5, 5); // two prompts
session.replayMessages();                           // a reconnect's replay is no prompt
step(90_000);                                       // the first 40 s of it active, then idle
const first = await reporter.report();
window.dispatchEvent(new Event("keydown"));         // back
step(5_000);
await reporter.report();
process.stdout.write(JSON.stringify({ sent, status: first.status, refine: session.refine(3) }));
"""
)


def test_activity_counts_active_seconds_and_prompts_only(tmp_path: Path) -> None:
    log = run_node(ACTIVITY_SCRIPT, {}, tmp_path)
    first, second = log["sent"]
    assert first == {
        "path": "/api/assignments/7/activity/",
        "method": "POST",
        "body": {"seconds": 60, "prompts": 2},
    }
    assert second["body"] == {"seconds": 5, "prompts": 0}
    # The session's refine names the set its instance belongs to.
    assert log["refine"]["assignment"] == 7


STORE_SCRIPT = (
    STUBS
    + """
import { InstanceStore } from "./maskroom/instances/store.js";
const asked = [];
const closed = "This set is submitted: it can no longer be changed.";
const answers = { GET: { status: 200, body: [] }, POST: { status: 409, body: { detail: closed } } };
const request = async (path, options = {}) => {
  const method = options.method ?? "GET";
  asked.push({ path, method, json: options.json ?? null });
  return answers[method];
};
const store = new InstanceStore(5, { request }, { assignment: 9 });
const readonly = [];
store.addEventListener("readonly", (event) => readonly.push(event.detail.reason));
await store.load();
await store.deleted();
const rle = { size: [4, 4], counts: "04<0" };
store.create({ labelId: 1, rle });
await new Promise((resolve) => setTimeout(resolve, 50));
const refused = store.create({ labelId: 1, rle });
process.stdout.write(JSON.stringify({ asked, readonly, refused, key: store.storageKey }));
"""
)


def test_the_store_on_a_set_names_it_and_turns_read_only_on_a_409(tmp_path: Path) -> None:
    log = run_node(STORE_SCRIPT, {}, tmp_path)
    load, deleted, create = log["asked"]
    assert load == {"path": "/api/images/5/instances/?assignment=9", "method": "GET", "json": None}
    assert deleted["path"] == "/api/images/5/instances/?deleted=1&assignment=9"
    assert create["path"] == "/api/images/5/instances/" and create["json"]["assignment"] == 9
    assert log["readonly"] == ["This set is submitted: it can no longer be changed."]
    assert log["refused"] is None  # refused here, not sent
    assert log["key"] == "maskroom:pending:image:5:set:9"


PICK_SCRIPT = (
    STUBS
    + """
import { InstanceStore } from "./maskroom/instances/store.js";
const asked = [];
const request = async (path, options = {}) => {
  asked.push({ path, method: options.method ?? "GET", json: options.json ?? null });
  const body = { id: 40 + asked.length, version: 1, label_id: 1, rle: options.json?.rle };
  return { status: 201, body };
};
const store = new InstanceStore(5, { request });
const rle = { size: [4, 4], counts: "04<0" };
store.create({ labelId: 1, rle, sources: [11, 12] }); // a reviewer's merge of two
store.create({ labelId: 1, rle });                    // a plain one names no sources
await new Promise((resolve) => setTimeout(resolve, 50));
process.stdout.write(JSON.stringify({ asked }));
"""
)


def test_a_pick_from_peoples_sets_sends_its_sources(tmp_path: Path) -> None:
    picked, plain = run_node(PICK_SCRIPT, {}, tmp_path)["asked"]
    assert picked["json"]["sources"] == [11, 12] and "assignment" not in picked["json"]
    assert "sources" not in plain["json"]
