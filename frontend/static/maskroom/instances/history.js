// Undo and redo: a stack of commands, each {label, do(), undo()}.
//
// Edits happen first (through the InstanceStore) and are pushed afterwards
// as a command that can take them back and do them again; a new edit drops
// what was undone. The commands call the store, which saves each step, so an
// undo is saved like any other edit (an undone create deletes the instance on
// the server, its redo restores it). Instance ids in commands may be the
// store's local ids: the store resolves them to server ids once saved.
//
// Events: "change" {canUndo, canRedo, undoLabel, redoLabel}.

const DEFAULT_LIMIT = 200;

export class History extends EventTarget {
  constructor({ limit = DEFAULT_LIMIT } = {}) {
    super();
    this.limit = limit;
    this.done = [];
    this.undone = [];
  }

  get canUndo() {
    return this.done.length > 0;
  }

  get canRedo() {
    return this.undone.length > 0;
  }

  // Record an edit that has just been made.
  push(command) {
    this.done.push(command);
    if (this.done.length > this.limit) this.done.shift();
    this.undone = [];
    this.changed();
  }

  // Returns the command undone, or null. A command that throws (its instance
  // is gone, say) is dropped, and the error goes to the caller.
  undo() {
    return this.step(this.done, this.undone, "undo");
  }

  redo() {
    return this.step(this.undone, this.done, "do");
  }

  step(from, to, method) {
    const command = from.pop();
    if (!command) return null;
    try {
      command[method]();
    } catch (err) {
      this.changed();
      throw err;
    }
    to.push(command);
    this.changed();
    return command;
  }

  clear() {
    this.done = [];
    this.undone = [];
    this.changed();
  }

  changed() {
    const detail = {
      canUndo: this.canUndo,
      canRedo: this.canRedo,
      undoLabel: this.done.at(-1)?.label ?? "",
      redoLabel: this.undone.at(-1)?.label ?? "",
    };
    this.dispatchEvent(new CustomEvent("change", { detail }));
  }
}
