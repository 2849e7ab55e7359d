// Who else has this image open, as the image's WebSocket tells it: a line
// over the sidebar ("Also here: ana, ben"). One person may have several
// connections (tabs); they are counted once. Reset when the socket drops:
// everyone still there says so again on reconnect.

import { el } from "../lib/dom.js";

export class Presence {
  constructor({ node, username }) {
    this.node = node;
    this.username = username;
    this.connections = new Map(); // connection id -> username
    this.render();
  }

  apply({ action, id, user }) {
    if (action === "join") this.connections.set(id, user);
    else this.connections.delete(id);
    this.render();
  }

  clear() {
    this.connections.clear();
    this.render();
  }

  // Everyone else on the image, each once, by name.
  get others() {
    return [...new Set(this.connections.values())].filter((name) => name !== this.username).sort();
  }

  render() {
    const others = this.others;
    this.node.hidden = others.length === 0;
    this.node.dataset.count = String(others.length);
    this.node.replaceChildren(
      el("span", { class: "muted" }, "Also here: "),
      ...others.flatMap((name, i) => [i ? ", " : "", el("strong", { class: "present" }, name)]),
    );
  }
}
