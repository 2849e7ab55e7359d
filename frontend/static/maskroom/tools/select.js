// Select tool: click an instance to select it (the topmost under the
// pointer), Shift+click to add it to the selection or take it out, click the
// background to clear the selection. The selection is kept in the order of
// the clicks: merge (M) unites into the first one selected.
//
// context: {viewer, instances: {instancesAt(xyImage)}, selection: {ids(), set(ids)}}.

export function createSelectTool({ instances, selection }) {
  return {
    name: "select",
    cursor: "pointer",
    activate() {},
    deactivate() {},
    onPointerDown(event, xyImage) {
      if (event.button !== 0) return;
      const [top] = instances.instancesAt(xyImage);
      const ids = selection.ids();
      if (event.shiftKey) {
        if (top === undefined) return;
        selection.set(ids.includes(top) ? ids.filter((id) => id !== top) : [...ids, top]);
      } else {
        selection.set(top === undefined ? [] : [top]);
      }
    },
    onPointerMove() {},
    onPointerUp() {},
    draw() {},
  };
}
