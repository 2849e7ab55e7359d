"""Request and response bodies for quality control."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from backend.annotations.serializers import instance_json
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
    record = outcome.record
    return {
        "instances": [instance_json(i) for i in outcome.instances],
        "disputed": record.disputed_clusters,
        "needs_review": record.disputed,
        "sets": record.sets,
        "method": record.method,
        "iou": record.iou,
        "quorum": record.quorum,
        "mean_f1": record.mean_f1,
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
