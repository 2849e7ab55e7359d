"""REST endpoints of the work queue: next set, next review, a set's life, progress."""

from __future__ import annotations

from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.annotations.models import Assignment
from backend.annotations.selectors import assignment_comments, assignment_for_user
from backend.annotations.services.sets import set_activity, set_return, set_skip
from backend.common.inputs import parse_input
from backend.common.pagination import paginate
from backend.projects.access import project_for_user
from backend.quality.models import ImageConsensus
from backend.quality.selectors import gold_feedback
from backend.quality.serializers import dispute_json
from backend.work.queue import queue_next, review_next
from backend.work.selectors import assignment_list, images_with_progress, state_counts
from backend.work.serializers import (
    ActivityInput,
    AssignmentFilterInput,
    ReturnInput,
    SkipInput,
    assignment_json,
    assignment_page_json,
    progress_page_json,
)
from backend.work.services import assignment_accept, assignment_submit


def _answer(assignment: Assignment | None) -> Response:
    if assignment is None:
        return Response(status=status.HTTP_204_NO_CONTENT)
    comments = list(assignment_comments(assignment=assignment))
    body = assignment_json(assignment, comments)
    feedback = gold_feedback(assignment=assignment)
    if feedback is not None:
        body["feedback"] = feedback
    return Response(body)


class QueueNextApi(APIView):
    """POST -> 200 the caller's next set, or 204 when nothing is left for them."""

    def post(self, request: Request, project_id: int) -> Response:
        project = project_for_user(request.user, project_id)
        return _answer(queue_next(project=project, user=request.user))


class ReviewNextApi(APIView):
    """POST -> 200 the next submitted set to review ("kind": "set") or disputed
    image ("kind": "dispute"), or 204."""

    def post(self, request: Request, project_id: int) -> Response:
        project = project_for_user(request.user, project_id)
        found = review_next(project=project, user=request.user)
        if isinstance(found, ImageConsensus):
            return Response(dispute_json(found))
        answer = _answer(found)
        if found is not None:
            answer.data["kind"] = "set"
        return answer


class ProjectAssignmentsApi(APIView):
    """GET ?status=&annotator=&image=&limit=&offset= -> a page of sets the caller may see."""

    def get(self, request: Request, project_id: int) -> Response:
        project = project_for_user(request.user, project_id)
        data = parse_input(AssignmentFilterInput, request.query_params)
        rows = assignment_list(
            project=project,
            user=request.user,
            status=data["status"],
            annotator=data["annotator"],
            image=data.get("image"),
        )
        return Response(paginate(request, rows, assignment_page_json))


class ProjectProgressApi(APIView):
    """GET ?state=todo|in_progress|review|done&limit=&offset= -> a page of images
    with their progress, and how many images are in each state."""

    def get(self, request: Request, project_id: int) -> Response:
        project = project_for_user(request.user, project_id)
        state = request.query_params.get("state", "")
        images = images_with_progress(project=project, state=state)
        states = state_counts(project=project)
        total = states[state] if state else sum(states.values())
        body = paginate(
            request, images, lambda page: progress_page_json(project, page), count=total
        )
        body["states"] = states
        body["workflow"] = {"overlap": project.overlap, "review": project.review}
        return Response(body)


class AssignmentApi(APIView):
    def get(self, request: Request, assignment_id: int) -> Response:
        return _answer(assignment_for_user(request.user, assignment_id))


class AssignmentSubmitApi(APIView):
    def post(self, request: Request, assignment_id: int) -> Response:
        assignment = assignment_for_user(request.user, assignment_id)
        return _answer(assignment_submit(assignment=assignment, user=request.user))


class AssignmentSkipApi(APIView):
    def post(self, request: Request, assignment_id: int) -> Response:
        assignment = assignment_for_user(request.user, assignment_id)
        data = parse_input(SkipInput, request.data)
        return _answer(set_skip(assignment=assignment, user=request.user, reason=data["reason"]))


class AssignmentAcceptApi(APIView):
    def post(self, request: Request, assignment_id: int) -> Response:
        assignment = assignment_for_user(request.user, assignment_id)
        return _answer(assignment_accept(assignment=assignment, user=request.user))


class AssignmentReturnApi(APIView):
    def post(self, request: Request, assignment_id: int) -> Response:
        assignment = assignment_for_user(request.user, assignment_id)
        data = parse_input(ReturnInput, request.data)
        returned = set_return(
            assignment=assignment,
            user=request.user,
            comment=data["comment"],
            x=data["x"],
            y=data["y"],
        )
        return _answer(returned)


class AssignmentActivityApi(APIView):
    """POST {"seconds", "prompts"} since the last report -> the assignment."""

    def post(self, request: Request, assignment_id: int) -> Response:
        assignment = assignment_for_user(request.user, assignment_id)
        data = parse_input(ActivityInput, request.data)
        updated = set_activity(
            assignment=assignment,
            user=request.user,
            seconds=data["seconds"],
            prompts=data["prompts"],
        )
        return Response(assignment_json(updated))
