// Eraser tool: drag to take pixels out of the selected instance; erasing all
// of it deletes the instance. The brush's code with the paint reversed (brush.js).

import { createStrokeTool } from "./brush.js";

export function createEraserTool(context) {
  return createStrokeTool({ ...context, name: "eraser", erase: true });
}
