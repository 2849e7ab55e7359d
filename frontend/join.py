"""The page of an invitation link, /join/{code}/: the project and the role it
gives; a visitor signs up (Django's UserCreationForm) or logs in and comes
back; a logged-in user presses Join. Joining lands on the project page.

Sign-ups pass the login throttle (backend/accounts): from an address that is
blocked for failed logins no account is made (429, as the login page), and
the new account logs in through the same throttled backend.
"""

from __future__ import annotations

from django.contrib.auth import authenticate, login
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from backend.accounts.backends import client_address
from backend.accounts.throttle import login_wait, throttled_message
from backend.common.errors import ServiceError
from backend.projects.invitations import (
    invitation_for_code,
    invitation_join,
    invitation_problem,
    invitation_signup_join,
)
from backend.projects.models import Invitation
from backend.projects.selectors import membership_of

TEMPLATE = "frontend/join.html"


@require_http_methods(["GET", "POST"])
def join(request: HttpRequest, code: str) -> HttpResponse:
    try:
        invitation = invitation_for_code(code=code)
    except ServiceError as exc:
        return _refused(request, exc)
    problem = invitation_problem(invitation)
    if problem is not None:
        return render(request, TEMPLATE, {"problem": problem}, status=410)
    if request.method == "POST" and request.user.is_authenticated:
        return _join(request, invitation)
    form = UserCreationForm(request.POST) if request.method == "POST" else UserCreationForm()
    if request.method == "POST":
        return _sign_up(request, invitation, form)
    return _page(request, invitation, form)


def _page(
    request: HttpRequest, invitation: Invitation, form: UserCreationForm, status: int = 200
) -> HttpResponse:
    mine = membership_of(project=invitation.project, user=request.user)
    context = {"invitation": invitation, "project": invitation.project, "form": form, "mine": mine}
    return render(request, TEMPLATE, context, status=status)


def _refused(request: HttpRequest, exc: ServiceError) -> HttpResponse:
    return render(request, TEMPLATE, {"problem": exc.message}, status=exc.status_code)


def _join(request: HttpRequest, invitation: Invitation) -> HttpResponse:
    try:
        invitation_join(code=invitation.code, user=request.user)
    except ServiceError as exc:  # used up or withdrawn since the page was shown
        return _refused(request, exc)
    return redirect("project-detail", project_id=invitation.project_id)


def _sign_up(request: HttpRequest, invitation: Invitation, form: UserCreationForm) -> HttpResponse:
    username = str(request.POST.get("username", ""))
    wait = login_wait(username=username, address=client_address(request))
    if wait:
        form.add_error(None, throttled_message(wait))
        response = _page(request, invitation, form, status=429)
        response["Retry-After"] = str(wait)
        return response
    if not form.is_valid():
        return _page(request, invitation, form)
    try:
        invitation_signup_join(code=invitation.code, form=form)
    except ServiceError as exc:
        return _refused(request, exc)
    user = authenticate(
        request, username=form.cleaned_data["username"], password=form.cleaned_data["password1"]
    )
    if user is None:  # blocked between the check and now: the account exists, log in later
        return redirect_to_login(reverse("project-detail", args=[invitation.project_id]))
    login(request, user)
    return redirect("project-detail", project_id=invitation.project_id)
