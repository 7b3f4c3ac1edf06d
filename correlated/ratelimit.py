"""Per-key rate limits on every machine surface: 429 with `Retry-After` once a key's budget is spent.

Each app gets its own Limiter: Flask-Limiter keeps its storage, key prefix and header settings
on the instance, so one module-level limiter bound to several apps in a process (tests, or two
"workers" side by side) would count in whichever storage was bound last.
"""
from __future__ import annotations

import hashlib
import math
import time

from flask import Flask, Response, current_app, render_template, request
from flask_limiter import HeaderNames, Limiter, RequestLimit
from limits import parse_many

from .auth import credential_from_request
from .web.common import safe_next

# Blueprints whose callers are programs holding an API key (or a connection's header secret).
LIMITED_BLUEPRINTS = ("api", "hightouch", "census", "webhooks", "segment", "connections_api",
                      "alerts_api")
QUERY_KEYS = ("token", "census_authentication")  # where Hightouch webhooks and Census put the key
# A browser write key is every visitor's of a site: each visitor's address pays for its calls.
BROWSER_ENDPOINTS = ("segment.receive_browser", "segment.preflight")
SCOPE = "ingest"  # one budget per key, shared by every machine surface
# Flask-Limiter would put Retry-After on every limited response, also on a 503 whose sender
# should retry at once (SDKs honour it on any retryable status); we set it on 429s only.
LIMITER_RETRY_AFTER = "X-RateLimit-Retry-After"
# Fail fast when Redis is unreachable: requests then pass unlimited (swallow_errors) instead of
# hanging or failing; losing a sync is worse than serving one request too many.
REDIS_OPTIONS = {"socket_connect_timeout": 2, "socket_timeout": 2}


def client_key() -> str:
    """Who pays for this request: a hash of its credential, else its remote address.

    Segment's writeKey may sit in the body, which is not read before the view; its SDKs send
    the same key as the HTTP Basic user, which is read here. Hashing keeps keys out of Redis.
    """
    if request.endpoint in BROWSER_ENDPOINTS:
        return "ip:" + (request.remote_addr or "unknown")
    credential = (credential_from_request()
                  or next((request.args[k] for k in QUERY_KEYS if request.args.get(k)), None)
                  or request.headers.get("Authorization"))  # a connection's own header secret
    if credential:
        return "key:" + hashlib.sha256(credential.encode()).hexdigest()[:32]
    return "ip:" + (request.remote_addr or "unknown")


def refused_message() -> str:
    return (f"too many requests: each API key may send {current_app.config['RATE_LIMIT']}; "
            "wait the number of seconds in the Retry-After header, then send again")


def init_app(app: Flask) -> Limiter:
    """Bind a limiter to `app` and put RATE_LIMIT on each machine blueprint; call after them."""
    uri = app.config["RATELIMIT_STORAGE_URI"]
    limiter = Limiter(key_func=client_key, default_limits=[], headers_enabled=True,
                      header_name_mapping={HeaderNames.RETRY_AFTER: LIMITER_RETRY_AFTER},
                      swallow_errors=True, retry_after="delta-seconds",
                      storage_options=REDIS_OPTIONS if uri.startswith("redis") else {})
    # after_request hooks run in reverse order: registered first, this one sees the limiter's headers
    app.after_request(lambda response: _retry_after(limiter, response))
    limiter.init_app(app)
    shared = limiter.shared_limit(app.config["RATE_LIMIT"], scope=SCOPE,
                                  error_message=refused_message)
    for name in LIMITED_BLUEPRINTS:
        if name in app.blueprints:
            shared(app.blueprints[name])
    limit_logins(app, limiter)
    app.extensions["correlated.limiter"] = limiter
    return limiter


def limit_logins(app: Flask, limiter: Limiter) -> None:
    """Password guessing: sign-in attempts per client address, failed ones per email too."""
    view = app.view_functions["dashboard.login"]
    view = limiter.limit(worker_share(app, "LOGIN_RATE_LIMIT"), key_func=client_address,
                         methods=["POST"], scope="login", on_breach=login_refused)(view)
    # Per account: only failures count, so guessing from many addresses still locks the email
    # while its owner signing in now and then never does.
    view = limiter.limit(worker_share(app, "LOGIN_ACCOUNT_RATE_LIMIT"), key_func=login_email,
                         methods=["POST"], scope="login-account", on_breach=login_refused,
                         deduct_when=lambda response: response.status_code == 401)(view)
    app.view_functions["dashboard.login"] = view


def worker_share(app: Flask, setting: str) -> str:
    """The limit this process enforces: all of it when the counters are shared (Redis) or it
    is the only worker; else its share, so that the workers together never allow more."""
    limit, workers = app.config[setting], app.config["SERVER_WORKERS"]
    if workers <= 1 or not app.config["RATELIMIT_STORAGE_URI"].startswith("memory"):
        return limit
    return "; ".join(f"{max(1, item.amount // workers)} per {item.multiples} "
                     f"{item.GRANULARITY.name}" for item in parse_many(limit))


def client_address() -> str:
    return request.remote_addr or "-"


def login_email() -> str:
    """The email a sign-in attempt names, hashed (emails stay out of Redis)."""
    email = request.form.get("email", "").strip().lower()
    return "email:" + hashlib.sha256(email.encode()).hexdigest()[:32]


def login_refused(limit: RequestLimit) -> Response:
    """The lockout page: how long to wait, in words, and the way back to the sign-in form."""
    seconds = max(1, math.ceil(limit.reset_at - time.time()))
    wait = f"{seconds} seconds" if seconds < 120 else f"{math.ceil(seconds / 60)} minutes"
    page = render_template("auth/locked.html", wait=wait, next=safe_next(request.args.get("next")))
    return Response(page, status=429, mimetype="text/html")


def _retry_after(limiter: Limiter, response: Response) -> Response:
    """On a 429: whole seconds until the window resets, rounded up (Flask-Limiter's can be 0)."""
    response.headers.pop(LIMITER_RETRY_AFTER, None)
    if response.status_code == 429 and limiter.current_limit is not None:
        wait = limiter.current_limit.window.reset_time - time.time()
        response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
    return response
