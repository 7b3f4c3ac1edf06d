"""What an alert says: the stored payload (the Standard Webhooks body, built at enqueue time)
and how each destination kind renders it (Slack Block Kit, email text and HTML)."""
from __future__ import annotations

import html
from datetime import datetime
from typing import Any
from urllib.parse import quote

from slack_sdk.models.blocks import ContextBlock, HeaderBlock, MarkdownTextObject, SectionBlock

DIGEST_LISTED = 20
SLACK_FIELDS = 10  # Block Kit's limit per section
FIELD_CHARS = 2000  # and per field
COLLECTIONS = {"account": "accounts", "user": "users"}
VERBS = {"signal.entered": "entered", "signal.exited": "left"}


def entity_url(base_url: str, entity_type: str, entity_id: str) -> str:
    collection = COLLECTIONS.get(entity_type, entity_type + "s")
    return f"{base_url}/{collection}/{quote(entity_id, safe='')}"


def signal_url(base_url: str, signal_id: str) -> str:
    return f"{base_url}/signals/{quote(signal_id, safe='')}"


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def signal_summary(signal: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(signal["id"]), "name": signal.get("name") or str(signal["id"]),
            "object": signal.get("object", "account")}


def transition_payload(kind: str, signal: dict[str, Any], entity: dict[str, Any],
                       values: dict[str, Any], at: datetime, url: str) -> dict[str, Any]:
    """One entity entering or leaving a signal: `{"type", "timestamp", "data"}`."""
    data = {"signal": signal_summary(signal), entity["type"]: _entity(entity),
            "values": values, "url": url}
    return {"type": kind, "timestamp": iso(at), "data": data}


def digest_payload(kind: str, signal: dict[str, Any], entities: list[dict[str, Any]],
                   at: datetime, url: str) -> dict[str, Any]:
    """Many entities at once: a count, the first DIGEST_LISTED, and the signal's page."""
    plural = COLLECTIONS.get(signal_summary(signal)["object"], "entities")
    digest = {"count": len(entities), plural: [_entity(e) for e in entities[:DIGEST_LISTED]]}
    return {"type": kind, "timestamp": iso(at),
            "data": {"signal": signal_summary(signal), "digest": digest, "url": url}}


def test_payload(destination_name: str, at: datetime, base_url: str) -> dict[str, Any]:
    return {"type": "test", "timestamp": iso(at),
            "data": {"message": f"Test message from correlated to “{destination_name}”.",
                     "url": base_url + "/"}}


def _entity(entity: dict[str, Any]) -> dict[str, Any]:
    return {k: entity[k] for k in ("id", "name", "url", "owner") if entity.get(k) is not None}


# --- reading a payload back -----------------------------------------------------------------

def subject(payload: dict[str, Any]) -> str:
    """One line: the Slack fallback text and the email subject."""
    return " ".join(_subject(payload).split())[:250]  # synced names may hold line breaks


def _subject(payload: dict[str, Any]) -> str:
    data = payload["data"]
    if payload["type"] == "test":
        return data["message"]
    verb, signal = VERBS.get(payload["type"], payload["type"]), data["signal"]["name"]
    if "digest" in data:
        noun = COLLECTIONS.get(data["signal"]["object"], "entities")
        return f"{data['digest']['count']} {noun} {verb} {signal}"
    return f"{_subject_entity(data)['name'] or _subject_entity(data)['id']} {verb} {signal}"


def _subject_entity(data: dict[str, Any]) -> dict[str, Any]:
    found = data.get("account") or data.get("user") or {}
    return {"id": found.get("id", ""), "name": found.get("name"), "url": found.get("url"),
            "owner": found.get("owner")}


def _listed(data: dict[str, Any]) -> list[dict[str, Any]]:
    digest = data["digest"]
    return next(v for k, v in digest.items() if k != "count")


# --- Slack ----------------------------------------------------------------------------------

def _esc(text: Any) -> str:
    """Slack mrkdwn escapes exactly these three."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(url: str | None, label: Any) -> str:
    return f"<{url}|{_esc(label)}>" if url else f"*{_esc(label)}*"


def slack_message(payload: dict[str, Any]) -> dict[str, Any]:
    """`{"text": fallback, "blocks": [...]}` for an incoming webhook."""
    data = payload["data"]
    if payload["type"] == "test":
        blocks = [SectionBlock(text=MarkdownTextObject(text=_esc(data["message"])))]
    elif "digest" in data:
        blocks = _slack_digest(payload)
    else:
        blocks = _slack_transition(payload)
    return {"text": subject(payload), "blocks": [block.to_dict() for block in blocks]}


def _slack_transition(payload: dict[str, Any]) -> list[Any]:
    data, entity = payload["data"], _subject_entity(payload["data"])
    verb = VERBS.get(payload["type"], payload["type"])
    headline = (f"*{_link(entity['url'], entity['name'] or entity['id'])}* {verb} "
                f"*{_esc(data['signal']['name'])}*")
    blocks: list[Any] = [SectionBlock(text=MarkdownTextObject(text=headline))]
    fields = [MarkdownTextObject(text=f"*{_esc(k)}*\n{_esc(v)}"[:FIELD_CHARS])
              for k, v in list(data.get("values", {}).items())[:SLACK_FIELDS]]
    if fields:
        blocks.append(SectionBlock(fields=fields))
    context = f"Owner: {_esc(entity['owner'])}" if entity["owner"] else "No owner"
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=context)]))
    return blocks


def _slack_digest(payload: dict[str, Any]) -> list[Any]:
    data = payload["data"]
    listed = _listed(data)
    lines = [f"• {_link(e.get('url'), e.get('name') or e['id'])}"
             + (f" ({_esc(e['owner'])})" if e.get("owner") else "") for e in listed]
    rest = data["digest"]["count"] - len(listed)
    more = f"…and {rest} more. " if rest > 0 else ""
    return [HeaderBlock(text=subject(payload)[:150]),
            SectionBlock(text=MarkdownTextObject(text="\n".join(lines)[:3000])),
            ContextBlock(elements=[MarkdownTextObject(
                text=f"{more}{_link(data['url'], 'See all in correlated')}")])]


# --- email ----------------------------------------------------------------------------------

def email_bodies(payload: dict[str, Any]) -> tuple[str, str]:
    """(plain text, HTML) of the message."""
    data = payload["data"]
    if payload["type"] == "test":
        rows: list[tuple[str, str | None]] = [(data["message"], None)]
    elif "digest" in data:
        rows = [(e.get("name") or e["id"], e.get("url")) for e in _listed(data)]
        rows.append((f"See all {data['digest']['count']} in correlated", data["url"]))
    else:
        entity = _subject_entity(data)
        rows = [(f"{k}: {v}", None) for k, v in data.get("values", {}).items()]
        rows.append((f"Owner: {entity['owner'] or 'none'}", None))
        rows.append(("Open in correlated", entity["url"]))
    text = "\n".join([subject(payload), ""] + [f"{t} <{u}>" if u else t for t, u in rows])
    items = "".join(f"<li><a href=\"{html.escape(u)}\">{html.escape(t)}</a></li>" if u
                    else f"<li>{html.escape(t)}</li>" for t, u in rows)
    return text + "\n", f"<p><strong>{html.escape(subject(payload))}</strong></p><ul>{items}</ul>"
