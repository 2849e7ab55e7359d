"""One ONNX Runtime session of a decoder graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class Session:
    """An ONNX Runtime session that takes the feeds its graph reads from a
    larger dict (the plain prompt graph has no use for the upscaling basis,
    and the exporter drops inputs a graph does not read)."""

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(threads, 1)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Threads spin while a run lasts (waking a sleeping thread for each of the
        # graph's ~200 parallel sections costs 10 ms a click in a VM) and stop
        # when it returns, so no core stays busy between clicks.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1")
        options.add_session_config_entry("session.force_spinning_stop", "1")
        self.session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.inputs = [node.name for node in self.session.get_inputs()]

    def run(self, outputs: list[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(outputs, {name: feeds[name] for name in self.inputs})
