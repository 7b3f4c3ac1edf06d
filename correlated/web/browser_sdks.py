"""Settings → Browser SDKs: the workspace's public browser write key and the origins whose
pages may send with it (protocols/segment_browser.py). Admins change them; members see them."""
from __future__ import annotations

from flask import flash, redirect, render_template, url_for

from ..extensions import db
from ..models import Workspace
from ..protocols.segment_browser import issue_browser_key, parse_origins
from ..protocols.webhooks import public_base_url
from .blueprint import bp
from .common import require_admin, workspace_id
from .forms import OriginsForm, PostForm


def _render(form: OriginsForm, status: int = 200):
    workspace = db.session.get(Workspace, workspace_id())
    if not form.is_submitted():
        form.origins.data = "\n".join(workspace.allowed_origins or [])
    return render_template("settings/browser.html", workspace=workspace, form=form,
                           post_form=PostForm(), base=public_base_url()), status


@bp.get("/settings/browser")
def browser_sdks():
    return _render(OriginsForm())


@bp.post("/settings/browser")
def save_origins():
    require_admin()
    form = OriginsForm()
    if not form.validate_on_submit():
        return _render(form, 400)
    try:
        origins = parse_origins(form.origins.data or "")
    except ValueError as exc:
        form.origins.errors.append(f"{str(exc)[0].upper()}{str(exc)[1:]}.")
        return _render(form, 400)
    workspace = db.session.get(Workspace, workspace_id())
    workspace.allowed_origins = origins
    db.session.commit()
    flash(f"Pages on {len(origins)} origin{'s' if len(origins) != 1 else ''} may now send with "
          "the browser write key." if origins else
          "No page may send with the browser write key now.", "success")
    return redirect(url_for("dashboard.browser_sdks"), 303)


@bp.post("/settings/browser/key")
def new_browser_key():
    """Create the browser write key, or replace it (pages with the old one stop sending)."""
    require_admin()
    workspace = db.session.get(Workspace, workspace_id())
    replaced = workspace.browser_write_key is not None
    issue_browser_key(db.session, workspace)
    db.session.commit()
    flash("A new browser write key replaces the old one: update your pages." if replaced else
          "The browser write key is ready: add your site's origins below.", "success")
    return redirect(url_for("dashboard.browser_sdks"), 303)
