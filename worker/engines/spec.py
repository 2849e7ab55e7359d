"""What the worker and the web process need to know to load an engine."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath

CLASSICAL = "classical"
CLASSICAL_VERSION = "1"


@dataclass(frozen=True)
class EngineSpec:
    """An engine to load: the built-in classical one, or a SAM checkpoint.

    `key` names model and version together and keys stored embeddings, so a
    changed checkpoint never reuses embeddings made by another.
    """

    name: str
    # "classical", "vit_b", "vit_l", "vit_h" (see worker/engines/sam/engine.py).
    # A classical spec with a checkpoint is a project's pixel classifier.
    arch: str
    checkpoint_path: str = ""
    sha256: str = ""
    # A project's adapted SAM decoder (backend/training): its prompt encoder
    # and mask decoder weights (safetensors) replace the checkpoint's, whose
    # image encoder it keeps, so it decodes the embeddings of `embeddings_of`.
    decoder_path: str = ""
    embeddings_of: str = ""
    # A project's box detector on the embeddings (worker/engines/sam/detector.py):
    # its automatic proposals are its boxes as prompts instead of a click grid.
    detector_path: str = ""
    # How the model wants its image and prompts: "sam" or "medsam"
    # (worker/engines/sam/preprocessing.py).
    preprocessing: str = "sam"

    @property
    def key(self) -> str:
        if self.arch == CLASSICAL and not self.sha256:
            return f"{CLASSICAL}-{CLASSICAL_VERSION}"
        suffix = "" if self.preprocessing == "sam" else f"-{self.preprocessing}"
        return f"{self.name}-{self.sha256[:12]}{suffix}"

    @property
    def embedding_key(self) -> str:
        """The key its embeddings are stored under: its own, or for an adapted
        decoder the key of the model whose image encoder it shares."""
        return self.embeddings_of or self.key

    @property
    def decoder_key(self) -> str:
        """Names the weights that decode (the ONNX export is cached under
        it): the versions that share a decoder (an adapted decoder and the
        box detectors trained on top of it, or a detector and its base)
        share one export instead of making their own."""
        if not self.embeddings_of:  # a whole model: its checkpoint's decoder
            return self.key
        if not self.decoder_path:  # a detector on its base's own decoder
            return self.embeddings_of
        return f"{self.embeddings_of}-{PurePath(self.decoder_path).stem}"

    @property
    def is_sam(self) -> bool:
        return self.arch != CLASSICAL


CLASSICAL_SPEC = EngineSpec(name=CLASSICAL, arch=CLASSICAL)
