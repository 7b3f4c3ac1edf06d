"""Settings: API keys (create, shown once; revoke) and members (invite, remove). Admins only
change anything; members can see who and what has access."""
from __future__ import annotations

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, session, url_for

from ..auth import add_member, issue_key, revoke_keys
from ..extensions import db
from .forms import KeyForm, MemberForm, PostForm
from ..models import ApiKey, Member, Workspace
from .blueprint import bp
from .common import principal, require_admin, workspace_id

NEW_KEY = "new_key"  # the session entry holding a key between its POST and its one showing


def _keys(ws: int) -> list[ApiKey]:
    return list(db.session.scalars(sa.select(ApiKey).where(ApiKey.workspace_id == ws).order_by(
        ApiKey.revoked_at.is_not(None), ApiKey.created_at.desc())))


def _render_keys(form: KeyForm, new_key: str | None = None, status: int = 200):
    response = render_template("settings/keys.html", keys=_keys(workspace_id()), form=form,
                               new_key=new_key, post_form=PostForm())
    headers = {"Cache-Control": "no-store"} if new_key else {}
    return response, status, headers


@bp.get("/settings/keys")
def keys():
    return _render_keys(KeyForm())


@bp.post("/settings/keys")
def create_key():
    """Issue a key, then redirect to the page that shows it once (POST-redirect-GET: reloading
    that page never issues another key). Only its hash is stored; the plaintext waits in the
    signed session cookie until that page takes it out."""
    require_admin()
    form = KeyForm()
    if not form.validate_on_submit():
        return _render_keys(form, status=400)
    workspace = db.session.get(Workspace, workspace_id())
    key, plaintext = issue_key(db.session, workspace, form.name.data.strip())
    db.session.commit()
    session[NEW_KEY] = {"workspace_id": workspace.id, "key": plaintext}
    return redirect(url_for("dashboard.new_key"), 303)


@bp.get("/settings/keys/new")
def new_key():
    """The key just created, shown once: taken out of the session as it is shown."""
    created = session.pop(NEW_KEY, None)
    if not created or created.get("workspace_id") != workspace_id():
        flash("A new key is shown once, right after it is created. Create another if you "
              "did not copy it.", "info")
        return redirect(url_for("dashboard.keys"))
    return _render_keys(KeyForm(formdata=None), new_key=created["key"])


@bp.post("/settings/keys/<key_id>/revoke")
def revoke_key(key_id: str):
    require_admin()
    ws = workspace_id()
    key = db.session.get(ApiKey, (ws, key_id))
    if key is None:
        abort(404, "No such key in this workspace.")
    if key.revoked_at is None:
        revoke_keys(db.session, key.prefix, workspace_id=ws)
        db.session.commit()
        flash(f"Key “{key.name}” ({key.prefix}…) is revoked: syncs using it now get 401.",
              "success")
    return redirect(url_for("dashboard.keys"))


# --- members --------------------------------------------------------------------------------

def _members(ws: int) -> list[Member]:
    return list(db.session.scalars(sa.select(Member).where(Member.workspace_id == ws)
                                   .order_by(Member.role, Member.email)))


@bp.get("/settings/members")
def members():
    return render_template("settings/members.html", members=_members(workspace_id()),
                           form=MemberForm(), post_form=PostForm(), me=principal().name)


@bp.post("/settings/members")
def invite_member():
    """Add a member with an initial password the admin passes on (no email is sent)."""
    require_admin()
    ws = workspace_id()
    form = MemberForm()
    if form.validate_on_submit():
        email = form.email.data.strip().lower()
        if db.session.get(Member, (ws, email)) is not None:
            form.email.errors.append("Already a member of this workspace.")
        else:
            add_member(db.session, db.session.get(Workspace, ws), email, form.password.data,
                       role=form.role.data)
            db.session.commit()
            flash(f"{email} can now sign in with the initial password you set.", "success")
            return redirect(url_for("dashboard.members"))
    return render_template("settings/members.html", members=_members(ws), form=form,
                           post_form=PostForm(), me=principal().name), 400


@bp.post("/settings/members/<path:email>/remove")
def remove_member(email: str):
    require_admin()
    ws = workspace_id()
    member = db.session.get(Member, (ws, email))
    if member is None:
        abort(404, "No such member in this workspace.")
    if member.email == principal().name:
        flash("You cannot remove yourself; ask another admin.", "error")
    elif member.role == "admin" and _admin_count(ws) <= 1:
        flash("A workspace keeps at least one admin.", "error")
    else:
        db.session.delete(member)
        db.session.commit()
        flash(f"{email} no longer has access to this workspace.", "success")
    return redirect(url_for("dashboard.members"))


def _admin_count(ws: int) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(Member).where(
        Member.workspace_id == ws, Member.role == "admin"))
