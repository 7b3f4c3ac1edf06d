"""Creating and finding workspaces."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .ingest import fields
from .auth import add_member
from .models import Workspace


def create_workspace(session: Session, name: str, admin_email: str | None = None,
                     admin_password: str | None = None) -> Workspace:
    """A workspace with its default field catalog and, optionally, an admin login."""
    workspace = Workspace(name=name)
    session.add(workspace)
    session.flush()
    fields.seed_defaults(session, workspace.id)
    if admin_email and admin_password:
        add_member(session, workspace, admin_email, admin_password, role="admin")
    return workspace


def find_workspace(session: Session, name: str) -> Workspace | None:
    return session.scalars(sa.select(Workspace).where(Workspace.name == name)).first()


def first_workspace(session: Session) -> Workspace | None:
    return session.scalars(sa.select(Workspace).order_by(Workspace.id)).first()
