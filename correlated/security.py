"""Response headers that make the browser refuse what we never do (plotly.js is local, so 'self'),
and requests turned away at the door: a NUL in the URL or a form, which no text column holds."""
from flask import Flask, Response, abort, request

from .errors import is_machine_request

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)


def init_app(app: Flask) -> None:
    app.before_request(refuse_nul)

    @app.after_request
    def set_headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response


def refuse_nul() -> None:
    """A NUL in the path is a 404 (no address holds one), in the query or a dashboard form a 400:
    PostgreSQL refuses NUL in any text, so a lookup would fail. JSON bodies are judged value by
    value by the engine."""
    if "\x00" in request.path:
        abort(404, "path: no address contains a NUL character")
    sources = [("query", request.args)]
    if not is_machine_request():  # machine bodies are JSON whatever their Content-Type says
        sources.append(("form", request.form))
    for where, values in sources:
        for name, value in values.items(multi=True):
            if "\x00" in name + value:
                abort(400, f"{where}: {ascii(name)[1:-1]}: must not contain NUL")
