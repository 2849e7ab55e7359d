// The image's instances on screen: drawn over the image (layer.js),
// listed in the sidebar (list.js), shown as the display controls say
// (display.js). All changes go through the InstanceStore (store.js),
// which saves them; these views follow its events and redraw only what changed.
//
// For the tools: instanceAt(x, y) / instancesAt(xyImage) hit-test in image
// pixels; setSelected(ids) highlights, and `layer` fires "selectionchange"
// {ids} whenever the selection changes (list click, tool, deletion).

import { InstanceDisplay } from "./display.js";
import { InstanceLayer } from "./layer.js";
import { InstanceList } from "./list.js";
import { isTyping } from "../lib/dom.js";

const byId = (id) => document.getElementById(id);

export class Instances {
  // labels: [{id, name, color}]; store: InstanceStore.
  // listNode/countNode: the list's tbody and count; the other nodes default to
  // the editor template's ids.
  constructor({ projectId, labels, listNode, countNode, viewer, store, nodes = {} }) {
    this.store = store;
    this.viewer = viewer;
    this.layer = new InstanceLayer({ viewer, labels });
    this.layer.attach(store);
    this.list = new InstanceList({
      store,
      layer: this.layer,
      viewer,
      labels,
      nodes: {
        body: listNode,
        count: countNode,
        scroll: nodes.scroll ?? byId("instance-scroll") ?? listNode.closest("table").parentElement,
        head: nodes.head ?? listNode.closest("table").tHead,
      },
    });
    this.display = new InstanceDisplay({
      layer: this.layer,
      projectId: projectId ?? document.body.dataset.projectId,
      nodes: {
        opacity: nodes.opacity ?? byId("instance-opacity"),
        outline: nodes.outline ?? byId("instance-outline"),
        hidden: nodes.hidden ?? byId("instance-hide"),
      },
    });
    window.addEventListener("keydown", (event) => {
      if (isTyping(event.target) || event.defaultPrevented) return;
      if (this.display.handleKey(event)) event.preventDefault();
    });
  }

  // id -> {instance, crop, ...} of every instance drawn.
  get items() {
    return this.layer.items;
  }

  get selected() {
    return this.layer.selected;
  }

  async load() {
    return this.store.load();
  }

  create({ labelId, rle }) {
    return this.store.create({ labelId, rle });
  }

  remove(id) {
    this.store.remove(id);
  }

  relabel(id, labelId) {
    this.store.update(id, { labelId });
  }

  instanceAt(x, y) {
    return this.layer.instanceAt(x, y);
  }

  instancesAt(xyImage) {
    return this.layer.instancesAt(xyImage);
  }

  setSelected(ids) {
    this.layer.setSelected(ids);
  }

  highlight(id) {
    this.layer.setHovered(id);
  }

  // Centre the instance in the viewer, zoom to it and select it (as a list click does).
  show(id) {
    this.list.activate(id);
  }
}
