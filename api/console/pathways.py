"""Console pages for pathways: the deployed versions and how many patients each runs for, the preview
picture of a version, and a side-by-side diff of two versions (their YAML and their plans).

Pathways hold no patient data, and the counts are aggregates: nothing here is written to the access log.
"""

from __future__ import annotations

import difflib
from datetime import date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse

from api.console.pages import PREFIX, page
from api.deps import RegistryDep, SessionDep
from api.security import Access, allow
from language.preview import preview, to_html, to_text
from services.principals import Role
from services.registry import DeployedPathway, PathwayRegistry, UnknownPathway
from services.reports import version_use

router = APIRouter(prefix=f"{PREFIX}/pathways", include_in_schema=False)
# Every staff role reads pathways; hospital systems have no console.
Staff = Annotated[Access, Depends(allow(Role.CLINICAL_MANAGER, Role.ADMIN, Role.AUDITOR, Role.CLINICIAN))]


async def deployed_or_404(registry: PathwayRegistry, pathway_id: str, version: int | None = None) -> DeployedPathway:
    try:
        return await registry.get(pathway_id, version)
    except UnknownPathway as unknown:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(unknown)) from None


def preview_anchor(deployed: DeployedPathway, asked: date | None) -> date:
    """The anchor a preview is drawn from: the one asked for, or today where the pathway runs."""
    return asked or datetime.now(ZoneInfo(deployed.pathway.timezone)).date()


@router.get("", response_class=HTMLResponse)
async def pathways_page(request: Request, registry: RegistryDep, session: SessionDep, access: Staff) -> HTMLResponse:
    """Every deployed pathway, each version with when it was deployed and how many patients it runs for."""
    use = await version_use(session)
    pathways = []
    for latest in await registry.latest():
        versions = [await registry.get(latest.pathway.id, number) for number in await registry.versions(latest.pathway.id)]
        pathways.append({"latest": latest, "versions": [
            {"deployed": deployed, "use": use.get((deployed.pathway.id, deployed.pathway.version))}
            for deployed in reversed(versions)]})
    return await page(request, "pathways.html", access, section="pathways", pathways=pathways)


@router.get("/{pathway_id}", response_class=HTMLResponse)
async def pathway_page(request: Request, pathway_id: str, registry: RegistryDep, session: SessionDep, access: Staff,
                       version: Annotated[int | None, Query(ge=1)] = None,
                       anchor: Annotated[date | None, Query(description="the preview's anchor date")] = None,
                       ) -> HTMLResponse:
    """One version (the newest by default): its preview picture, and a form to compare two versions."""
    deployed = await deployed_or_404(registry, pathway_id, version)
    versions = await registry.versions(pathway_id)
    use = await version_use(session)
    return await page(request, "pathway.html", access, section="pathways", deployed=deployed, versions=versions,
                      anchor=preview_anchor(deployed, anchor), use=use.get((pathway_id, deployed.pathway.version)),
                      compare=(versions[-2], versions[-1]) if len(versions) > 1 else None)


@router.get("/{pathway_id}/versions/{version}/preview", response_class=HTMLResponse)
async def preview_page(pathway_id: str, version: int, registry: RegistryDep, access: Staff,
                       anchor: Annotated[date | None, Query()] = None) -> HTMLResponse:
    """The preview picture of one version (language/preview.py), a page of its own: the console frames it."""
    deployed = await deployed_or_404(registry, pathway_id, version)
    return HTMLResponse(to_html(preview(deployed.pathway, preview_anchor(deployed, anchor))))


@router.get("/{pathway_id}/diff", response_class=HTMLResponse)
async def diff_page(request: Request, pathway_id: str, registry: RegistryDep, access: Staff,
                    old: Annotated[int, Query(ge=1)], new: Annotated[int, Query(ge=1)],
                    anchor: Annotated[date | None, Query()] = None) -> HTMLResponse:
    """Two versions side by side: the YAML as written, and the plans both make from the same anchor."""
    before, after = (await deployed_or_404(registry, pathway_id, old), await deployed_or_404(registry, pathway_id, new))
    day = preview_anchor(after, anchor)
    return await page(request, "pathway_diff.html", access, section="pathways", before=before, after=after, anchor=day,
                      text=side_by_side(before.source, after.source, f"v{old}", f"v{new}"),
                      plan=side_by_side(to_text(preview(before.pathway, day)), to_text(preview(after.pathway, day)),
                                        f"v{old}", f"v{new}"))


def side_by_side(before: str, after: str, before_name: str, after_name: str) -> str:
    """difflib's side-by-side table: changed lines with three lines of context around them."""
    return difflib.HtmlDiff(tabsize=2, wrapcolumn=72).make_table(
        before.splitlines(), after.splitlines(), before_name, after_name, context=True, numlines=3)
