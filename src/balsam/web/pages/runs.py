"""The portal's recorded runs: the *Kör* button (on a runnable file and in the project's
*Körningar* tab) and a run's page, which follows it until it ends (it reloads itself
every two seconds while the run goes; no script needed) and links its record.

The pages ask :class:`~balsam.domain.runs.service.RunService`, as the API does: only
members see and start runs.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from balsam.domain.runs.plan import kind_of_file
from balsam.domain.runs.schemas import RunCreate, RunPublic
from balsam.domain.runs.service import ENDED, RunService
from balsam.errors import InvalidInput
from balsam.web.deps import get_ctx
from balsam.web.pages import i18n
from balsam.web.pages.forms import posted_form, require_session
from balsam.web.pages.i18n import N_
from balsam.web.pages.render import render

router = APIRouter(include_in_schema=False)

#: A run's state in the portal's words.
RUN_STATES = {
    "queued": N_("Queued"),
    "running": N_("Running"),
    "succeeded": N_("Succeeded"),
    "failed": N_("Failed"),
    "cancelled": N_("Cancelled"),
}
NOT_AN_OBJECT = N_('The parameters must be a JSON object, e.g. {"year": 2026}.')
#: Seconds between reloads of a run's page while it goes.
RELOAD_SECONDS = 2


def runnable(path: str) -> bool:
    """Whether the portal offers *Kör* for the file at ``path``."""
    return path.lower().endswith(".pipeline") or kind_of_file(path) is not None


def run_url(project_id: str, run_id: str) -> str:
    return f"/projects/{project_id}/runs/{run_id}"


def run_labels(request: Request) -> dict[str, str]:
    gettext = i18n.gettext(request)
    return {state: gettext(label) for state, label in RUN_STATES.items()}


def run_create(form: dict[str, str]) -> RunCreate:
    """The run a posted *Kör* form asks for; InvalidInput naming what is wrong."""
    text = form.get("parameters", "").strip()
    try:
        parameters = json.loads(text) if text else None
    except ValueError as exc:
        raise InvalidInput(
            N_('The parameters must be a JSON object, e.g. {"year": 2026}.')
        ) from exc
    if parameters is not None and not isinstance(parameters, dict):
        raise InvalidInput(N_('The parameters must be a JSON object, e.g. {"year": 2026}.'))
    try:
        return RunCreate.model_validate(
            {
                "branchId": form.get("branch", ""),
                "path": form.get("path", "").strip(),
                "parameters": parameters,
                **({"template": form["template"]} if form.get("template") else {}),
            }
        )
    except ValidationError as exc:
        raise InvalidInput(N_("Give the branch and the path of the file to run.")) from exc


@router.get("/projects/{project_id}/runs/{run_id}")
async def run_page(
    request: Request, project_id: str, run_id: str, done: Annotated[str, Query(max_length=20)] = ""
) -> HTMLResponse:
    session = await require_session(request)
    ctx = get_ctx(request)
    run: RunPublic = await run_in_threadpool(RunService(ctx).get, session.actor, project_id, run_id)
    going = run.state not in ENDED
    return render(
        request,
        "project/run.html",
        nav="projects",
        project_id=project_id,
        run=run,
        states=run_labels(request),
        record_url=f"/api/v1/projects/{project_id}/runs/{run_id}/record",
        going=going,
        refresh=RELOAD_SECONDS if going else 0,
        cancelled=done == "cancel",
    )


@router.post("/projects/{project_id}/runs/{run_id}/cancel")
async def cancel_run(request: Request, project_id: str, run_id: str) -> Response:
    session, _form = await posted_form(request)
    ctx = get_ctx(request)
    await run_in_threadpool(RunService(ctx).cancel, session.actor, project_id, run_id)
    return RedirectResponse(f"{run_url(project_id, run_id)}?done=cancel", status_code=303)
