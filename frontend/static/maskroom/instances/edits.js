// The editor's changes to instances, each made through the InstanceStore and
// recorded in the History as one undoable command: create, mask edit,
// relabel, delete and merge. Tools and keys call these, never the store.

import { cropFromRle, toRle, union } from "./maskops.js";

export class Edits {
  // store: InstanceStore; history: History.
  constructor({ store, history }) {
    this.store = store;
    this.history = history;
  }

  // A new instance; undo deletes it, redo restores it (same id). `sources`:
  // the people's instances a reviewer picked it from; `origin`: "prompt"
  // for a mask the model decoded (provenance).
  create({ labelId, rle, sources = null, origin = null }, label = "create instance") {
    const instance = this.store.create({ labelId, rle, sources, origin });
    if (!instance) return null; // a read-only set: the store said why
    const id = instance.id;
    this.history.push({
      label,
      do: () => this.store.restore(id),
      undo: () => this.store.remove(id),
    });
    return instance;
  }

  // A new mask for an instance (brush, eraser, refine).
  setMask(id, rle, label = "edit mask") {
    if (this.store.refuseReadOnly()) return;
    const before = this.existing(id).rle;
    this.store.update(id, { rle });
    this.history.push({
      label,
      do: () => this.store.update(id, { rle }),
      undo: () => this.store.update(id, { rle: before }),
    });
  }

  relabel(ids, labelId) {
    if (this.store.refuseReadOnly()) return;
    const changed = ids.filter((id) => this.existing(id).label_id !== labelId);
    if (!changed.length) return;
    const before = new Map(changed.map((id) => [id, this.existing(id).label_id]));
    for (const id of changed) this.store.update(id, { labelId });
    this.history.push({
      label: changed.length > 1 ? `relabel ${changed.length} instances` : "relabel",
      do: () => changed.forEach((id) => this.store.update(id, { labelId })),
      undo: () => changed.forEach((id) => this.store.update(id, { labelId: before.get(id) })),
    });
  }

  // Delete instances; undo restores them.
  remove(ids) {
    if (this.store.refuseReadOnly()) return;
    const present = ids.filter((id) => this.store.get(id));
    if (!present.length) return;
    for (const id of present) this.store.remove(id);
    this.history.push({
      label: present.length > 1 ? `delete ${present.length} instances` : "delete",
      do: () => present.forEach((id) => this.store.remove(id)),
      undo: () => present.forEach((id) => this.store.restore(id)),
    });
  }

  // The union of `others` goes into `firstId`, which keeps its label; the
  // others are deleted. One step: undo restores them and the first's mask.
  merge(firstId, others) {
    if (this.store.refuseReadOnly()) return;
    const first = this.existing(firstId);
    const rest = others.filter((id) => id !== firstId).map((id) => this.existing(id));
    if (!rest.length) throw new Error("Select two instances to merge (Shift+click the second).");
    let crop = cropFromRle(first.rle);
    for (const instance of rest) crop = union(crop, cropFromRle(instance.rle));
    const before = first.rle;
    const merged = toRle(crop, first.rle.size);
    const restIds = rest.map((instance) => instance.id);
    const apply = () => {
      this.store.update(firstId, { rle: merged });
      restIds.forEach((id) => this.store.remove(id));
    };
    apply();
    this.history.push({
      label: "merge",
      do: apply,
      undo: () => {
        restIds.forEach((id) => this.store.restore(id));
        this.store.update(firstId, { rle: before });
      },
    });
  }

  existing(id) {
    const instance = this.store.get(id);
    if (!instance) throw new Error(`Instance ${id} is gone.`);
    return instance;
  }
}
