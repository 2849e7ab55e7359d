"""Request and response bodies for quality control."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from backend.quality.selectors import AGREEMENT_IOU, Agreement


class AgreementInput(serializers.Serializer):
    iou = serializers.FloatField(
        required=False, min_value=0.05, max_value=1.0, default=AGREEMENT_IOU
    )


def agreement_json(agreement: Agreement) -> dict[str, Any]:
    return {
        "sets": [
            {"assignment": a.pk, "annotator": a.annotator.get_username(), "status": a.status}
            for a in agreement.sets
        ],
        "pairs": [{"a": p.a, "b": p.b, **p.score.as_dict()} for p in agreement.pairs],
        "mean_f1": agreement.mean_f1,
    }
