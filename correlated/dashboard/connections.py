"""The /connections page: setup instructions, inbound webhook connections, ingest log."""
from . import bp  # noqa: F401
