// Others' saved changes to the open set, as the image's WebSocket tells them
// (docs/api.md "Working together"), shown in the store without being sent
// back. Our own changes come back too: they are known (by client key or id)
// and left alone. An instance with changes of ours still to save keeps ours:
// saving it then meets the server's version as a conflict, as before.

// event: an "instance" message; store: the InstanceStore of the set shown.
export function applyRemoteChange(store, event) {
  if ((event.assignment ?? null) !== (store.assignment ?? null)) return false; // another set
  const ours = store.queue.ops.some((op) => op.id === event.id || (event.client_key && op.key === event.client_key));
  if (ours || store.conflicts.has(event.id)) return false;
  const shown = store.items.get(event.id);
  if (event.action === "delete") {
    if (!shown) return false;
    store.removed.delete(event.id);
    store.show(event.id, null);
    return true;
  }
  if (!event.instance) return false;
  if (shown && shown.version >= event.version) return false; // already as new
  if (!shown && event.action === "create" && [...store.aliases.values()].includes(event.id)) return false;
  store.show(event.id, event.instance);
  return true;
}

// "instances": many changed at once (a consensus stored, a set accepted):
// read the set again, unless changes of ours wait to be saved (they would
// be replayed over it anyway; the next reload picks the rest up).
export async function reloadAfterBulkChange(store, event) {
  if ((event.assignment ?? null) !== (store.assignment ?? null)) return false;
  if (store.pending || store.conflicts.size) return false;
  await store.load();
  return true;
}
