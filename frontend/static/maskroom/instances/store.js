// The open image's instances, and the one way to change them: every create,
// mask edit, relabel, delete and restore goes through InstanceStore.
//
// Changes show at once (optimistic) and are saved in the background, in
// order, by a SaveQueue (save_queue.js). The pending operations are kept in
// localStorage (per image), so a dropped network or a reload loses nothing:
// they are replayed over the server's list and sent again. Updates and
// deletes carry the version they were made on; on a stale one the server
// answers 409 with its own version, and the store keeps the local change and
// records a conflict (mine and the server's) until keepMine() or useServer().
//
// The store holds one set of the image: its curated set, or a person's set
// (an assignment, docs/api.md "The work queue"), which every load and create
// names. A set the caller may not change is read-only (setReadOnly, or a 403
// or 409 refusal from the server): changes are refused here with the reason.
//
// Instances are plain objects as the API gives them ({id, label_id, label,
// rle, area, bbox, state, author, version, ...}), replaced, never mutated, on
// each change. New ones have a local id ("local-N") until saved; then a
// "replace" event gives the server id, and get()/update()/remove()/restore()
// still accept the local one.
//
// Events:
//   "change"    {kind: "create"|"update"|"remove"|"restore"|"replace", instance, previousId?}
//   "load"      {instances}: the whole list was (re)loaded
//   "savestate" {state: "saved"|"saving"|"offline"|"conflict"|"error", pending, conflicts, message}
//   "conflict"  {conflicts: [{id, mine, server}]} (mine/server null: deleted there)
//   "error"     {message}: the server refused a change, which was undone here
//   "readonly"  {reason}: the set cannot be changed by this user (why, in a sentence)

import { endpoints, httpRequest } from "../lib/api.js";
import { decodeCrop } from "./rle.js";
import { SaveQueue } from "./save_queue.js";

const LOCAL_PREFIX = "local-";

export function isLocalId(id) {
  return typeof id === "string" && id.startsWith(LOCAL_PREFIX);
}

function sameContent(a, b) {
  return a.label_id === b.label_id && a.rle?.counts === b.rle?.counts;
}

function randomKey() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`;
}

function detailOf(status, body) {
  return body?.detail ?? `HTTP ${status}`;
}

export class InstanceStore extends EventTarget {
  // api: {request(path, {method, json}) -> {status, body}}; defaults to fetch.
  // assignment: the id of the person's set shown (null: the curated set).
  constructor(imageId, api = {}, { assignment = null } = {}) {
    super();
    this.imageId = imageId;
    this.assignment = assignment;
    this.request = api.request ?? httpRequest;
    // Pending changes are kept per set: one set's never replay into another.
    this.storageKey = `maskroom:pending:image:${imageId}${assignment ? `:set:${assignment}` : ""}`;
    this.readOnly = ""; // why this set cannot be changed here ("" : it can)
    this.items = new Map(); // id -> instance as the editor shows it
    this.removed = new Map(); // id -> {instance, ops}: deleted here, restorable
    this.aliases = new Map(); // "local-N" -> server id, once saved
    this.conflicts = new Map(); // id -> {id, mine, server}
    this.labels = new Map(); // label id -> {id, name, color}
    this.nextLocal = 1;
    this.lastError = "";
    this.loaded = false; // until load() has read what an earlier page left, keep it
    this.queue = new SaveQueue({
      request: this.request,
      requestOf: (op) => this.requestOf(op),
      settle: (op, status, body) => this.settle(op, status, body),
    });
    this.queue.addEventListener("change", () => {
      this.save();
      this.emitState();
    });
  }

  setLabels(labels) {
    this.labels = new Map(labels.map((label) => [label.id, label]));
  }

  // --- reading ------------------------------------------------------------

  all() {
    return [...this.items.values()];
  }

  get(id) {
    return this.items.get(this.resolve(id)) ?? null;
  }

  resolve(id) {
    return this.aliases.get(id) ?? id;
  }

  get pending() {
    return this.queue.length;
  }

  conflictList() {
    return [...this.conflicts.values()];
  }

  get saveState() {
    if (this.conflicts.size) return "conflict";
    if (this.queue.offline && this.queue.length) return "offline";
    if (this.queue.length) return "saving";
    if (this.lastError) return "error";
    return "saved";
  }

  // The server's list, with what an earlier page left pending replayed on top.
  async load() {
    const { status, body } = await this.request(endpoints.setInstances(this.imageId, this.assignment));
    if (status !== 200) {
      const error = new Error(`Could not load the instances: ${detailOf(status, body)}`);
      error.status = status;
      error.detail = detailOf(status, body);
      throw error;
    }
    const list = Array.isArray(body) ? body : (body?.results ?? []);
    this.items = new Map(list.map((instance) => [instance.id, instance]));
    this.removed.clear();
    this.readStorage();
    this.loaded = true;
    this.emit("load", { instances: this.all() });
    if (this.conflicts.size) this.emitConflicts();
    this.queue.flush();
    this.emitState();
    return this.all();
  }

  // The image's deleted instances on the server, most recent first.
  async deleted() {
    const path = endpoints.setInstances(this.imageId, this.assignment, { deleted: true });
    const { status, body } = await this.request(path);
    return status === 200 && Array.isArray(body) ? body : [];
  }

  // --- changing -----------------------------------------------------------

  // The set cannot be changed by this user: `reason` says why (empty: it can again).
  setReadOnly(reason) {
    if (reason === this.readOnly) return;
    this.readOnly = reason;
    this.emit("readonly", { reason });
  }

  // True (and the reason told as an error) when the set is read-only.
  refuseReadOnly() {
    if (!this.readOnly) return false;
    this.emit("error", { message: this.readOnly });
    return true;
  }

  create({ labelId, rle, state = "accepted", sources = null, origin = null }) {
    if (this.refuseReadOnly()) return null;
    const id = `${LOCAL_PREFIX}${this.nextLocal++}`;
    const instance = this.withChanges({ id, version: 0, author: null, state }, { labelId, rle });
    this.items.set(id, instance);
    const op = { kind: "create", id, key: randomKey(), labelId, rle, state };
    if (sources?.length) op.sources = sources;
    if (origin) op.origin = origin; // "prompt": a mask the model decoded (provenance)
    this.queue.ops.push(op);
    this.changed("create", instance);
    return instance;
  }

  // A new mask and/or label; sent with the version it was made on.
  update(id, { rle, labelId } = {}) {
    if (this.refuseReadOnly()) return null;
    id = this.resolve(id);
    const current = this.items.get(id);
    if (!current) throw new Error(`No instance ${id}`);
    const instance = this.withChanges(current, { rle, labelId });
    this.items.set(id, instance);
    const conflict = this.conflicts.get(id);
    if (conflict) {
      conflict.mine = instance; // still to settle: keepMine / useServer
      this.emitConflicts();
    } else {
      const fields = {};
      if (rle !== undefined) fields.rle = rle;
      if (labelId !== undefined) fields.labelId = labelId;
      const last = this.queue.last(id);
      // Unsent changes to the same instance travel as one.
      if (last?.kind === "create" || last?.kind === "update") Object.assign(last, fields);
      else this.queue.ops.push({ kind: "update", id, base: current.version, ...fields });
    }
    this.changed("update", instance);
    return instance;
  }

  remove(id) {
    if (this.refuseReadOnly()) return null;
    id = this.resolve(id);
    const instance = this.items.get(id);
    if (!instance) return null;
    this.items.delete(id);
    // Unsent changes to it are moot; after an unsent create the server never knew it.
    const dropped = this.queue.drop(id);
    const conflict = this.conflicts.get(id);
    if (conflict) {
      conflict.mine = null;
      this.emitConflicts();
    } else if (!dropped.some((op) => op.kind === "create")) {
      this.queue.ops.push({ kind: "remove", id, base: instance.version });
    }
    this.removed.set(id, { instance, ops: dropped });
    this.changed("remove", instance);
    return instance;
  }

  // Undo a delete: the same id comes back (from the server if it was deleted there).
  restore(id) {
    if (this.refuseReadOnly()) return null;
    id = this.resolve(id);
    const entry = this.removed.get(id);
    if (!entry) return this.restoreFromServer(id);
    this.removed.delete(id);
    this.items.set(id, entry.instance);
    const last = this.queue.last(id);
    const conflict = this.conflicts.get(id);
    if (conflict) {
      conflict.mine = entry.instance;
      this.emitConflicts();
    } else if (last?.kind === "remove") {
      // The server never saw the delete: take it back, with what it had dropped.
      this.queue.ops.splice(this.queue.ops.indexOf(last), 1, ...entry.ops);
    } else if (entry.ops.some((op) => op.kind === "create")) {
      this.queue.ops.push(...entry.ops);
    } else {
      this.queue.ops.push({ kind: "restore", id, instance: entry.instance }, ...entry.ops);
    }
    this.changed("restore", entry.instance);
    return entry.instance;
  }

  // An instance deleted before this page loaded: shown once the server restored it.
  restoreFromServer(id) {
    if (isLocalId(id) || this.items.has(id)) return null;
    this.queue.ops.push({ kind: "restore", id, instance: null });
    this.changed();
    return null;
  }

  // --- conflicts ----------------------------------------------------------

  // Save the local version over the server's.
  keepMine(id) {
    const conflict = this.conflicts.get(id);
    if (!conflict) return;
    this.conflicts.delete(id);
    const { mine, server } = conflict;
    const content = mine && { labelId: mine.label_id, rle: mine.rle };
    if (mine && !server) {
      // Deleted on the server: bring it back, then put our version on it.
      this.queue.ops.push({ kind: "restore", id, instance: mine }, { kind: "update", id, base: null, ...content });
    } else if (mine) {
      this.items.set(id, { ...mine, version: server.version });
      this.queue.ops.push({ kind: "update", id, base: server.version, ...content });
    } else if (server) {
      this.queue.ops.push({ kind: "remove", id, base: server.version });
    }
    this.emitConflicts();
    this.changed(mine ? "update" : null, this.items.get(id));
  }

  // Drop the local version and show the server's.
  useServer(id) {
    const conflict = this.conflicts.get(id);
    if (!conflict) return;
    this.conflicts.delete(id);
    this.queue.drop(id);
    this.removed.delete(id);
    this.emitConflicts();
    this.show(id, conflict.server);
    this.changed();
  }

  // --- talking to the server (SaveQueue calls these) -----------------------

  // Send what is pending now rather than at the end of the backoff (the server is back).
  retryNow() {
    this.queue.retryNow();
  }

  requestOf(op) {
    if (op.kind === "create") {
      const json = { label: op.labelId, rle: op.rle, state: op.state, client_key: op.key };
      if (this.assignment) json.assignment = this.assignment;
      if (op.sources) json.sources = op.sources;
      if (op.origin) json.origin = op.origin;
      return [endpoints.imageInstances(this.imageId), { method: "POST", json }];
    }
    if (op.kind === "update") {
      const json = { version: op.base ?? undefined };
      if (op.labelId !== undefined) json.label = op.labelId;
      if (op.rle !== undefined) json.rle = op.rle;
      return [endpoints.instance(op.id), { method: "PATCH", json }];
    }
    if (op.kind === "remove") return [endpoints.instanceAtVersion(op.id, op.base), { method: "DELETE" }];
    return [endpoints.instanceRestore(op.id), { method: "POST" }];
  }

  settle(op, status, body) {
    const ok = { create: [200, 201], update: [200], remove: [204, 404], restore: [200] }[op.kind];
    if (ok.includes(status)) {
      if (op.kind === "create") this.created(op, body);
      else if (op.kind !== "remove") this.acknowledged(op, body);
    } else if (status === 409 && body?.instance && op.kind !== "create") {
      // Our own earlier save whose answer was lost: the server already has it.
      const mine = this.items.get(op.id);
      if (op.kind === "update" && mine && sameContent(mine, body.instance)) this.acknowledged(op, body.instance);
      else this.conflicted(op.id, body.instance);
    } else if (status === 404 && op.kind === "update") {
      this.conflicted(op.id, null); // deleted on the server meanwhile
    } else {
      // 403: not this user's to change; 409 without an instance: the set itself
      // is closed (submitted, accepted). Nothing more will be taken: say so once.
      if (status === 403 || status === 409) this.setReadOnly(detailOf(status, body));
      this.refused(op, `Could not save instance ${op.id}: ${detailOf(status, body)}`);
    }
  }

  created(op, body) {
    const localId = op.id;
    this.aliases.set(localId, body.id);
    for (const queued of this.queue.ops) {
      if (queued === op || queued.id !== localId) continue;
      queued.id = body.id;
      queued.base = body.version;
    }
    const removed = this.removed.get(localId);
    if (removed) {
      this.removed.delete(localId);
      this.removed.set(body.id, { instance: { ...removed.instance, id: body.id, version: body.version }, ops: [] });
    }
    const local = this.items.get(localId);
    if (!local) return;
    this.items.delete(localId);
    // Local changes still queued win over the saved content until they are sent.
    const instance = this.queue.has(body.id, op) ? { ...local, ...serverFields(body) } : body;
    this.items.set(body.id, instance);
    this.emitChange("replace", instance, { previousId: localId });
  }

  // The server took a change: later queued ones build on its new version.
  acknowledged(op, server) {
    for (const queued of this.queue.ops) {
      if (queued !== op && queued.id === op.id) queued.base = server.version;
    }
    const local = this.items.get(op.id);
    if (this.queue.has(op.id, op)) {
      if (local) this.items.set(op.id, { ...local, version: server.version });
    } else if (local || op.kind === "restore") {
      this.items.set(op.id, server);
      this.emitChange(local ? "update" : "restore", server);
    }
  }

  conflicted(id, server) {
    this.queue.drop(id);
    this.conflicts.set(id, { id, mine: this.items.get(id) ?? null, server });
    this.emitConflicts();
  }

  // A change the server will never take (400, 403, ...): undo it here.
  async refused(op, message) {
    this.lastError = message;
    this.emit("error", { message });
    this.queue.drop(op.id);
    if (op.kind === "create" || isLocalId(op.id)) return this.show(op.id, null);
    const { status, body } = await this.request(endpoints.instance(op.id));
    if (status === 200) this.show(op.id, body);
    else if (status === 404) this.show(op.id, null);
  }

  // --- helpers ------------------------------------------------------------

  // Show `instance` (null: nothing) under `id`, with the matching event.
  show(id, instance) {
    const shown = this.items.get(id);
    if (instance) {
      this.items.set(id, instance);
      this.removed.delete(id);
      this.emitChange(shown ? "update" : "restore", instance);
    } else if (shown) {
      this.items.delete(id);
      this.emitChange("remove", shown);
    }
  }

  withChanges(instance, { rle, labelId }) {
    const next = { ...instance };
    if (labelId !== undefined) {
      next.label_id = labelId;
      next.label = this.labels.get(labelId)?.name ?? instance.label ?? "";
    }
    if (rle !== undefined) {
      const crop = decodeCrop(rle);
      next.rle = rle;
      next.area = crop.area;
      next.bbox = [crop.x0, crop.y0, crop.width, crop.height];
    }
    return next;
  }

  // After a local change: keep it, tell the views, send it.
  changed(kind = null, instance = null) {
    this.lastError = "";
    this.save();
    if (kind) this.emit("change", { kind, instance });
    this.queue.flush();
    this.emitState();
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  emitChange(kind, instance, extra = {}) {
    this.emit("change", { kind, instance, ...extra });
    this.emitState();
  }

  emitConflicts() {
    this.save();
    this.emit("conflict", { conflicts: this.conflictList() });
    this.emitState();
  }

  emitState() {
    this.emit("savestate", {
      state: this.saveState,
      pending: this.queue.length,
      conflicts: this.conflicts.size,
      message: this.lastError,
    });
  }

  // --- persistence --------------------------------------------------------

  save() {
    if (!this.loaded) return;
    try {
      if (!this.queue.length && !this.conflicts.size) {
        localStorage.removeItem(this.storageKey);
        return;
      }
      const data = { ops: this.queue.ops, conflicts: this.conflictList(), nextLocal: this.nextLocal };
      localStorage.setItem(this.storageKey, JSON.stringify(data));
    } catch (err) {
      console.warn("maskroom: could not keep the pending changes in localStorage", err);
    }
  }

  readStorage() {
    let data = null;
    try {
      data = JSON.parse(localStorage.getItem(this.storageKey) || "null");
    } catch {
      data = null;
    }
    if (!data) return;
    this.nextLocal = Math.max(this.nextLocal, data.nextLocal ?? 1);
    this.queue.ops = Array.isArray(data.ops) ? data.ops : [];
    for (const op of this.queue.ops) this.replay(op);
    for (const conflict of data.conflicts ?? []) {
      this.conflicts.set(conflict.id, conflict);
      if (conflict.mine) this.items.set(conflict.id, conflict.mine);
      else this.items.delete(conflict.id);
    }
  }

  // Show what a pending operation will do once sent.
  replay(op) {
    const current = this.items.get(op.id);
    if (op.kind === "create") {
      const blank = { id: op.id, version: 0, author: null, state: op.state };
      this.items.set(op.id, this.withChanges(blank, { labelId: op.labelId, rle: op.rle }));
    } else if (op.kind === "update" && current) {
      this.items.set(op.id, this.withChanges(current, { labelId: op.labelId, rle: op.rle }));
    } else if (op.kind === "remove" && current) {
      this.items.delete(op.id);
      this.removed.set(op.id, { instance: current, ops: [] });
    } else if (op.kind === "restore" && op.instance && !current) {
      this.items.set(op.id, op.instance);
    }
  }
}

function serverFields(body) {
  const { id, version, author, created_at: createdAt, image } = body;
  return { id, version, author, created_at: createdAt, image };
}
