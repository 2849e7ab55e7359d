"""Unfinished embeddings are queued again when the embedded setup starts."""

from __future__ import annotations

import json
import os
from base64 import b64decode

import pytest
import redis
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile

from backend.images.services import image_upload
from backend.projects.models import Project
from backend.segmentation.models import Embedding
from backend.segmentation.services import embeddings_requeue_unfinished
from tests.conftest import shared_data

pytestmark = pytest.mark.django_db(transaction=True)


def queued_embedding_ids(client: redis.Redis) -> list[int]:
    ids = []
    for raw in client.lrange("celery", 0, -1):
        message = json.loads(raw)
        if message["headers"]["task"] == "segmentation.compute_embedding":
            args, _kwargs, _embed = json.loads(b64decode(message["body"]))
            ids.append(int(args[0]))
    return ids


def test_it_requeues_pending_running_and_coarse_but_not_finished(
    project: Project, owner: User
) -> None:
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.fail("REDIS_URL must name the test Redis (make test sets it)")
    client = redis.Redis.from_url(url)
    data = shared_data("nuclei_dsb2018/image.tif").read_bytes()
    images = image_upload(
        project=project,
        user=owner,
        files=[SimpleUploadedFile(f"n{i}.tif", data) for i in range(5)],
    )
    embeddings = [Embedding.objects.get(image=image) for image in images]
    states = ["pending", "running", "coarse", "ready", "failed"]  # coarse: tiles unfinished
    for embedding, state in zip(embeddings, states, strict=True):
        Embedding.objects.filter(pk=embedding.pk).update(status=state)
    client.delete("celery")

    count = embeddings_requeue_unfinished()

    assert count == 3
    assert sorted(queued_embedding_ids(client)) == sorted(e.pk for e in embeddings[:3])
    assert Embedding.objects.get(pk=embeddings[1].pk).status == "pending"
    assert Embedding.objects.get(pk=embeddings[3].pk).status == "ready"
    client.delete("celery")
