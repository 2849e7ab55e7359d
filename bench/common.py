"""What every benchmark shares: options, tables, statistics, machine facts,
the benchmark model and a live maskroom to measure.

A benchmark module exposes `run() -> list[Table]` and reads its options with
`options()` (BENCH_QUICK, BENCH_SECONDS; `python -m bench` sets them from its
command line). Timings are wall-clock milliseconds; whenever a figure is
compared with another (a reference, an older tree), the two are measured in
the same run, interleaved, so that the load other programs put on the
machine falls on both alike.

The benchmark model is a full-size vit_b with random weights (fixed seed),
saved as an official state dict and installed through
`segmentation_model_install`: SAM's prompt encoder and mask decoder are the
same size in vit_b, vit_l and vit_h, so decode timings are those of the real
models. It and the reference features are cached under BENCH_HOME
(default ~/.cache/maskroom-bench).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
CHECKPOINT_SEED = 0
MODEL_NAME = "bench-vit-b"
IMAGE_SIZE = 1024


# --- options and output -----------------------------------------------------


@dataclass(frozen=True)
class Options:
    quick: bool
    seconds: float  # how long the load benchmark runs


def options() -> Options:
    quick = os.environ.get("BENCH_QUICK", "") not in ("", "0", "false")
    default_seconds = 10.0 if quick else 60.0
    return Options(quick=quick, seconds=float(os.environ.get("BENCH_SECONDS") or default_seconds))


@dataclass
class Table:
    """A titled table of strings, printed as Markdown."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([_cell(c) for c in cells])

    def render(self) -> str:
        widths = [
            max(len(str(c)), *(len(r[i]) for r in self.rows)) if self.rows else len(str(c))
            for i, c in enumerate(self.columns)
        ]

        def line(cells: Sequence[object]) -> str:
            return (
                "| "
                + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True))
                + " |"
            )

        out = [f"### {self.title}", "", line(self.columns), line(["-" * w for w in widths])]
        out += [line(r) for r in self.rows]
        out += [""] + [f"- {n}" for n in self.notes] if self.notes else []
        return "\n".join(out) + "\n"


def _cell(value: object) -> str:
    if isinstance(value, float):
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}" if abs(value) >= 0.1 or value == 0 else f"{value:.3f}"
    return str(value)


@dataclass(frozen=True)
class Stats:
    """Percentiles of a sample of milliseconds."""

    n: int
    p50: float
    p95: float
    p99: float
    mean: float
    min: float
    max: float

    @classmethod
    def of(cls, values_ms: Sequence[float]) -> Stats:
        a = np.asarray(values_ms, dtype=np.float64)
        if a.size == 0:
            return cls(0, *(float("nan"),) * 6)
        p50, p95, p99 = np.percentile(a, [50, 95, 99])
        return cls(
            int(a.size), float(p50), float(p95), float(p99), float(a.mean()), float(a.min()),
            float(a.max()),
        )  # fmt: skip

    def cells(self) -> list[object]:
        return [self.n, self.min, self.p50, self.p95, self.p99, self.max]


STAT_COLUMNS = ["n", "min ms", "p50 ms", "p95 ms", "p99 ms", "max ms"]


def machine_table() -> Table:
    """CPU, cores, library versions, date and load: printed above every run."""
    import onnxruntime
    import torch

    table = Table("Machine", ["what", "value"])
    table.add("date", date.today().isoformat())
    table.add("CPU", cpu_model())
    table.add("cores (usable)", f"{len(os.sched_getaffinity(0))} of {os.cpu_count()}")
    table.add("load average (1, 5, 15 min)", " ".join(f"{v:.2f}" for v in os.getloadavg()))
    table.add("Python", platform.python_version())
    table.add("torch (threads)", f"{torch.__version__} ({torch.get_num_threads()})")
    table.add("onnxruntime", onnxruntime.__version__)
    table.add("numpy", np.__version__)
    table.add("quick mode", str(options().quick))
    return table


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def load_note() -> str:
    one, five, _ = os.getloadavg()
    return f"load average during the run: {one:.2f} (1 min), {five:.2f} (5 min)"


# --- the benchmark model and image ----------------------------------------


def bench_home() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "maskroom-bench"
    folder = Path(os.environ.get("BENCH_HOME") or default)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def random_vit_b_checkpoint() -> Path:
    """A full-size vit_b with random weights (seed 0), saved as an official state dict."""
    path = bench_home() / f"sam_vit_b_random_seed{CHECKPOINT_SEED}.pth"
    if not path.is_file():
        import torch
        from segment_anything import sam_model_registry

        torch.manual_seed(CHECKPOINT_SEED)
        sam = sam_model_registry["vit_b"](checkpoint=None)
        temp = path.with_suffix(".part")
        torch.save(sam.state_dict(), temp)
        os.replace(temp, path)
    return path


def bench_image() -> np.ndarray:
    """A 1024x1024 uint16 fluorescence image: the DSB2018 nuclei field tiled 2x2
    (synthetic blobs when ../shared/data is missing)."""
    source = SHARED_DATA / "nuclei_dsb2018" / "image.tif"
    if source.is_file():
        import tifffile

        field_ = np.asarray(tifffile.imread(source))
        reps = (-(-IMAGE_SIZE // field_.shape[0]), -(-IMAGE_SIZE // field_.shape[1]))
        return np.tile(field_, reps)[:IMAGE_SIZE, :IMAGE_SIZE]
    sys.path.insert(0, str(REPO))
    from tests.tiny_sam import synthetic_cells

    return synthetic_cells((IMAGE_SIZE, IMAGE_SIZE))[..., 0].astype(np.uint16) * 16


def tiff_bytes(image: np.ndarray) -> bytes:
    import io

    import tifffile

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, image)
    return buffer.getvalue()


# --- a maskroom home with the model, a user and ready images ---------------

_home: Path | None = None


def django_ready() -> Path:
    """Set up Django once per process on a throwaway MASKROOM_HOME (SQLite, the
    in-memory channel layer): the benchmarks never touch a real deployment."""
    global _home
    if _home is not None:
        return _home
    _home = Path(tempfile.mkdtemp(prefix="run-", dir=bench_home()))
    os.environ.update(
        MASKROOM_HOME=str(_home), DJANGO_SETTINGS_MODULE="backend.settings", DEBUG="true"
    )
    for name in ("DATABASE_URL", "REDIS_URL", "DJANGO_ALLOW_ASYNC_UNSAFE"):
        os.environ.pop(name, None)
    sys.path.insert(0, str(REPO))
    import django
    from django.core.management import call_command

    django.setup()
    from backend.common.home import home_folders_create

    home_folders_create()
    call_command("migrate", verbosity=0, interactive=False)
    import atexit

    atexit.register(shutil.rmtree, _home, ignore_errors=True)
    return _home


@dataclass
class Scene:
    """What the benchmarks click on: `image_ids` share one picture (so one
    embedding computation serves them all) and are each a separate image to
    the server, with its own cache entry."""

    token: str
    image_ids: list[int]
    engine_key: str
    checkpoint: Path
    features: np.ndarray  # the float32 reference features (1, 256, 64, 64)
    original_size: tuple[int, int]
    input_size: tuple[int, int]


_scene: Scene | None = None


def scene(images: int = 1) -> Scene:
    """A user, a project on the benchmark model and `images` ready images (grown on demand)."""
    global _scene
    django_ready()
    if _scene is None:
        _scene = _scene_create()
    while len(_scene.image_ids) < images:
        _scene.image_ids.append(_image_add(_scene))
    return _scene


def _scene_create() -> Scene:
    from django.contrib.auth.models import User

    from backend.accounts.services import token_for
    from backend.projects.services import project_create
    from backend.segmentation.checkpoints import segmentation_model_install
    from backend.segmentation.selectors import engine_spec_named

    checkpoint = random_vit_b_checkpoint()
    model = segmentation_model_install(name=MODEL_NAME, arch="vit_b", checkpoint_path=checkpoint)
    user = User.objects.create_user("bench", password="bench-password-1")
    token = token_for(user=user)
    project_create(user=user, name="Benchmark", labels=["nucleus"], model=model.name)
    spec = engine_spec_named(MODEL_NAME)
    assert spec is not None
    made = Scene(
        token=token.key,
        image_ids=[],
        engine_key=spec.key,
        checkpoint=Path(model.checkpoint_path),
        features=np.zeros(0),
        original_size=(0, 0),
        input_size=(0, 0),
    )
    made.image_ids.append(_image_add(made))
    _reference_features(made)
    return made


def _image_add(made: Scene) -> int:
    """Upload the benchmark image once more and make its embedding ready."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from backend.images.services import image_upload
    from backend.projects.models import Project

    project = Project.objects.get(name="Benchmark")
    upload = SimpleUploadedFile("nuclei.tif", tiff_bytes(bench_image()), "image/tiff")
    [image] = image_upload(project=project, user=project.created_by, files=[upload])
    _embedding_ready(image.pk, made.engine_key)
    return int(image.pk)


def _embedding_ready(image_id: int, engine_key: str) -> None:
    """Compute the embedding as the worker does, once per engine key and
    picture (cached in BENCH_HOME); later images get a copy."""
    from django.conf import settings

    from backend.segmentation.compute import embedding_compute
    from backend.segmentation.models import Embedding
    from worker import embedding_store

    cached = bench_home() / "embeddings" / f"{engine_key}-{_picture_digest()}"
    embedding = Embedding.objects.get(image_id=image_id, engine_key=engine_key)
    if not cached.is_dir():
        embedding_compute(embedding_id=embedding.pk)
        embedding.refresh_from_db()
        if embedding.status != Embedding.Status.READY:
            raise RuntimeError(f"the benchmark embedding failed: {embedding.error}")
        stored = embedding_store.load(settings.EMBEDDINGS_ROOT, engine_key, image_id)
        embedding_store.save(cached.parent, cached.name, 0, _rekey(stored, cached.name))
        return
    loaded = embedding_store.load(cached.parent, cached.name, 0)
    path = embedding_store.save(
        settings.EMBEDDINGS_ROOT, engine_key, image_id, _rekey(loaded, engine_key)
    )
    Embedding.objects.filter(pk=embedding.pk).update(
        status=Embedding.Status.READY, path=str(path), error=""
    )


def _rekey(embedding: Any, key: str) -> Any:
    from dataclasses import replace

    return replace(embedding, engine_key=key)


def _picture_digest() -> str:
    return hashlib.sha256(bench_image().tobytes()).hexdigest()[:12]


def _reference_features(made: Scene) -> None:
    """segment_anything's own float32 features of the picture (SamPredictor.set_image)."""
    from backend.images.models import Image
    from backend.images.rendering import image_model_rgb

    path = bench_home() / f"features-{made.engine_key}-{_picture_digest()}.npz"
    if not path.is_file():
        import torch
        from segment_anything import SamPredictor

        from worker.engines.sam.loading import load_sam

        predictor = SamPredictor(load_sam(made.checkpoint, "vit_b"))
        predictor.set_image(image_model_rgb(Image.objects.get(pk=made.image_ids[0])))
        with torch.inference_mode():
            features = predictor.features.numpy()
        np.savez(
            path,
            features=features,
            original_size=np.array(predictor.original_size),
            input_size=np.array(predictor.input_size),
        )
    data = np.load(path)
    made.features = data["features"]
    made.original_size = (int(data["original_size"][0]), int(data["original_size"][1]))
    made.input_size = (int(data["input_size"][0]), int(data["input_size"][1]))


def reference_predictor(made: Scene) -> Any:
    """A SamPredictor on the benchmark weights with the picture's float32 features set."""
    import torch
    from segment_anything import SamPredictor

    from worker.engines.sam.loading import load_sam

    predictor = SamPredictor(load_sam(made.checkpoint, "vit_b"))
    predictor.features = torch.from_numpy(made.features)
    predictor.original_size, predictor.input_size = made.original_size, made.input_size
    predictor.is_image_set = True
    return predictor


# --- a live web server --------------------------------------------------------


@dataclass
class Server:
    """uvicorn serving backend.asgi:application from `tree` (this checkout by default)."""

    url: str  # ws://127.0.0.1:PORT
    process: subprocess.Popen[bytes]
    log_path: Path
    label: str

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def cpu_ms(self) -> float:
        """CPU time the server process has used so far (all its threads), in ms."""
        return process_cpu_ms(self.process.pid)


def process_cpu_ms(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    return ticks * 1000.0 / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def live_server(
    *,
    tree: Path = REPO,
    label: str = "maskroom",
    extra_args: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """Start uvicorn as `manage.py serve` runs it (same options), on a free port,
    against the benchmark home; stop it on exit."""
    from backend.common.management.commands.serve import uvicorn_argv
    from tests.live import free_port, http_ok, server_stop, wait_until

    home = django_ready()
    port = free_port()
    argv = [*uvicorn_argv("127.0.0.1", port), "--log-level", "warning", *extra_args]
    server_env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(tree), **(env or {})}
    log_path = home / f"{label}-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, cwd=tree, env=server_env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    from tests.live import ServerProcess

    handle = ServerProcess(name=label, process=process, log_path=log_path)
    try:
        try:
            wait_until(
                lambda: http_ok(f"http://127.0.0.1:{port}/accounts/login/"),
                what=f"{label} web server",
                servers=[handle],
            )
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{handle.log()[-3000:]}") from None
        yield Server(url=f"ws://127.0.0.1:{port}", process=process, log_path=log_path, label=label)
    finally:
        server_stop(handle)


def ws_headers(token: str, server_url: str) -> dict[str, str]:
    """The handshake's headers: the token, and the page's own origin (the
    server checks scheme, host and port)."""
    origin = server_url.replace("ws://", "http://", 1).replace("wss://", "https://", 1)
    return {"Authorization": f"Token {token}", "Origin": origin}


def now_ms() -> float:
    return time.perf_counter() * 1000.0


# --- a WebSocket client ------------------------------------------------------


class Client:
    """One annotator's connection to /ws/images/<id>/, as the browser speaks it
    (permessage-deflate offered, Token header for authentication)."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.next_id = 0

    @classmethod
    async def open(cls, server: Server, image_id: int, token: str) -> Client:
        from websockets.asyncio.client import connect

        connection = await connect(
            f"{server.url}/ws/images/{image_id}/",
            additional_headers=ws_headers(token, server.url),
            max_size=16 * 1024 * 1024,
            open_timeout=60,
            ping_interval=None,  # as a browser: it answers the server's pings, sends none
        )
        client = cls(connection)
        status = await client.receive()
        if status.get("embedding_status") != "ready":
            raise RuntimeError(f"image {image_id} is not ready: {status}")
        return client

    async def receive(self) -> dict[str, Any]:
        import json

        return dict(json.loads(await self.connection.recv()))

    async def send(self, message: dict[str, Any]) -> None:
        import json

        await self.connection.send(json.dumps(message))

    async def prompt(
        self, points: Sequence[Sequence[float]] = (), box: Sequence[float] | None = None
    ) -> tuple[float, dict[str, Any]]:
        """Send one prompt and wait for its reply: (round trip ms, reply)."""
        self.next_id += 1
        message = {
            "type": "prompt",
            "request_id": self.next_id,
            "points": [list(p) for p in points],
        }
        message["box"] = list(box) if box is not None else None
        start = now_ms()
        await self.send(message)
        reply = await self.receive()
        elapsed = now_ms() - start
        if reply.get("type") != "mask" or reply.get("request_id") != self.next_id:
            raise RuntimeError(f"unexpected reply to request {self.next_id}: {reply}")
        return elapsed, reply

    async def reset(self) -> None:
        await self.send({"type": "reset"})

    async def close(self) -> None:
        await self.connection.close()


def rle_mask(rle: dict[str, Any]) -> np.ndarray:
    """The bool (H, W) mask of a reply's RLE (pycocotools, off the timed path)."""
    from pycocotools import mask as coco_mask

    coded = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    return np.asarray(coco_mask.decode(coded), dtype=bool)
