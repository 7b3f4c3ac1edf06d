"""Browser dashboards: one blueprint, its routes split into modules by page group."""
from .blueprint import bp  # noqa: F401

# Modules register their routes, filters and template helpers on bp.
from . import (  # noqa: E402,F401
    accounts, browser_sdks, catalog, common, connections, events, formatting, lists, scores,
    settings, signals, users, views,
)
from . import alerts  # noqa: E402,F401
