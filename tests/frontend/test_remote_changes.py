"""The others' saved changes, as the WebSocket tells them, in the editor's
store (instances/remote.js, under node): shown for the set open, never for
another; our own changes (pending or come back) left alone; an older version
never over a newer; a delete removes; a bulk change reloads."""

from __future__ import annotations

from pathlib import Path

from tests.frontend.test_modules import pytestmark, run_node  # noqa: F401
from tests.frontend.test_work_modules import STUBS

SCRIPT = (
    STUBS
    + """
import { InstanceStore } from "./maskroom/instances/store.js";
import { applyRemoteChange, reloadAfterBulkChange } from "./maskroom/instances/remote.js";
const rle = { size: [4, 4], counts: "04<0" };
const other = { size: [4, 4], counts: "0240" };
const server = [{ id: 5, version: 2, label_id: 1, rle, state: "accepted" }];
let loads = 0;
const hold = [];  // answers to creates wait here until released
const request = async (path, options = {}) => {
  if ((options.method ?? "GET") === "GET") { loads += 1; return { status: 200, body: server }; }
  return new Promise((resolve) => hold.push(resolve));
};
const store = new InstanceStore(3, { request });
await store.load();
const seen = [];
store.addEventListener("change", (e) => seen.push([e.detail.kind, e.detail.instance.id]));
const event = (fields) => ({ assignment: null, client_key: "", by: "ana", ...fields });
const result = {};
result.otherSet = applyRemoteChange(store, event({ action: "create", id: 9, version: 1,
  assignment: 12, instance: { id: 9, version: 1, rle } }));
result.created = applyRemoteChange(store, event({ action: "create", id: 9, version: 1,
  instance: { id: 9, version: 1, label_id: 1, rle } }));
result.stale = applyRemoteChange(store, event({ action: "update", id: 5, version: 2,
  instance: { id: 5, version: 2, label_id: 1, rle: other } }));
result.newer = applyRemoteChange(store, event({ action: "update", id: 5, version: 3,
  instance: { id: 5, version: 3, label_id: 2, rle: other } }));
result.label = store.get(5).label_id;
const mine = store.create({ labelId: 1, rle });        // our create, its answer not back yet
const key = store.queue.ops.at(-1).key;
result.ownEcho = applyRemoteChange(store, event({ action: "create", id: 40, version: 1,
  client_key: key, instance: { id: 40, version: 1, rle } }));
result.pendingReload = await reloadAfterBulkChange(store, { assignment: null });
const gone = event({ action: "delete", id: 9, version: 2, instance: null });
result.deleted = applyRemoteChange(store, gone);
result.ids = store.all().map((i) => i.id).sort();
result.mine = mine.id;
const quiet = new InstanceStore(4, { request });   // another image: no changes of its own
await quiet.load();
result.quietReload = await reloadAfterBulkChange(quiet, { assignment: null });
result.otherSetReload = await reloadAfterBulkChange(quiet, { assignment: 12 });
result.seen = seen;
result.loads = loads;
process.stdout.write(JSON.stringify(result));
"""
)


def test_changes_from_others_reach_the_open_set_only(tmp_path: Path) -> None:
    out = run_node(SCRIPT, {}, tmp_path)
    assert out["otherSet"] is False  # another set's change is not this editor's
    assert out["created"] is True
    assert out["stale"] is False  # the store already has version 2
    assert out["newer"] is True and out["label"] == 2
    assert out["ownEcho"] is False  # our own create come back: known by its key
    assert out["pendingReload"] is False  # changes of ours wait to be saved first
    assert out["quietReload"] is True and out["otherSetReload"] is False
    assert out["loads"] == 3  # two first loads and the one reload
    assert out["deleted"] is True
    assert sorted(out["ids"], key=str) == sorted([5, out["mine"]], key=str)
    assert out["seen"][:2] == [["restore", 9], ["update", 5]]
    assert out["seen"][-1] == ["remove", 9]
