"""Request and response bodies for quality control."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rest_framework import serializers

from backend.annotations.serializers import instance_json
from backend.quality.models import ImageConsensus
from backend.quality.run import ConsensusOutcome
from backend.quality.selectors import AGREEMENT_IOU, Agreement


class AgreementInput(serializers.Serializer):
    iou = serializers.FloatField(
        required=False, min_value=0.05, max_value=1.0, default=AGREEMENT_IOU
    )


class ConsensusInput(serializers.Serializer):
    method = serializers.ChoiceField(choices=["majority", "staple"], required=False)
    iou = serializers.FloatField(required=False, min_value=0.05, max_value=1.0)
    quorum = serializers.IntegerField(required=False, min_value=1, max_value=10)
    confirm = serializers.BooleanField(required=False, default=False)


def consensus_json(outcome: ConsensusOutcome) -> dict[str, Any]:
    return {
        "instances": [instance_json(i) for i in outcome.instances],
        **consensus_record_json(outcome.record),
    }


def _name(user: Any) -> str | None:
    return user.get_username() if user is not None else None


def _when(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def consensus_record_json(record: ImageConsensus) -> dict[str, Any]:
    """How the image's last consensus was made, and where its dispute stands."""
    return {
        "image": record.image_id,
        "disputed": record.disputed_clusters,
        "needs_review": record.disputed,
        "sets": record.sets,
        "method": record.method,
        "iou": record.iou,
        "quorum": record.quorum,
        "mean_f1": record.mean_f1,
        "consensus_instances": record.instances,
        "computed_at": _when(record.computed_at),
        "computed_by": _name(record.computed_by),
        "reviewer": _name(record.reviewer),
        "resolved_by": _name(record.resolved_by),
        "resolved_at": _when(record.resolved_at),
    }


def dispute_json(record: ImageConsensus) -> dict[str, Any]:
    """A disputed image as the review queue hands it out."""
    return {
        "kind": "dispute",
        "image_name": record.image.name,
        "project": record.image.project_id,
        **consensus_record_json(record),
    }


def agreement_json(agreement: Agreement) -> dict[str, Any]:
    return {
        "sets": [
            {"assignment": a.pk, "annotator": a.annotator.get_username(), "status": a.status}
            for a in agreement.sets
        ],
        "pairs": [{"a": p.a, "b": p.b, **p.score.as_dict()} for p in agreement.pairs],
        "mean_f1": agreement.mean_f1,
    }
