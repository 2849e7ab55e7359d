"""An engine evaluation's JSON (docs/api.md)."""

from __future__ import annotations

from typing import Any

from backend.evaluations.models import EngineEvaluation
from backend.evaluations.selectors import evaluation_summary


def evaluation_json(evaluation: EngineEvaluation) -> dict[str, Any]:
    created_by = evaluation.created_by
    return {
        "id": evaluation.pk,
        **evaluation_summary(evaluation),
        "status": evaluation.status,
        "split": evaluation.split,
        "progress": round(evaluation.progress, 4),
        "error": evaluation.error,
        "created_at": evaluation.created_at.isoformat(),
        "created_by": created_by.get_username() if created_by is not None else None,
    }
