"""Console forms for commands and endpoints: form fields ⇄ the definitions the domain takes.

Plain functions over the request's form (a ``MultiDict``); validation itself is the domain's
(``commands.build_command`` via ``views_support``), so the console and the API refuse the
same things with the same words.

Condition values are typed as JSON when they parse as JSON (``5``, ``true``, ``["a", "b"]``,
``"5"``) and taken as plain text otherwise (``Spelling error``); a string that would parse as
something else is shown quoted, so editing a command gives back the same values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from app.webhooks.commands import Command
from app.webhooks.providers import get_provider
from app.webhooks.reply_settings import KEY as REPLY
from app.webhooks.views_support import KNOWN_SETTINGS

#: Blank condition rows offered under the command's own.
BLANK_CONDITIONS = 2


def _last(form: Mapping[str, Any], name: str, default: str = "") -> str:
    """The last value of ``name`` (a hidden "0" before a checkbox gives unchecked)."""
    getlist = getattr(form, "getlist", None)
    values = getlist(name) if getlist else ([form[name]] if name in form else [])
    return str(values[-1]).strip() if values else default


def _checked(form: Mapping[str, Any], name: str, default: bool) -> bool:
    value = _last(form, name, "")
    return default if value == "" else value.lower() in ("1", "on", "true", "yes")


def show_value(value: Any) -> str:
    """A condition value as the form shows it (see the module docstring)."""
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            return value
        return json.dumps(value)
    return json.dumps(value)


def read_value(text: str, op: str) -> Any:
    """A condition value typed in the form, for ``op``."""
    text = text.strip()
    if op == "exists":
        return None if text == "" else text.lower() not in ("false", "0", "no")
    if text == "":
        return [] if op == "in" else ""
    try:
        return json.loads(text)
    except ValueError:
        if op == "in":
            return [part.strip() for part in text.split(",") if part.strip()]
        return text


def command_values(command: Command | None) -> dict:
    """The form's fields for ``command`` (a blank new command when None)."""
    if command is None:
        return {
            "name": "",
            "description": "",
            "aliases": "",
            "trigger": "",
            "action": "open_case",
            "priority": "100",
            "conditions": [],
            "title_template": "",
            "timeline_template": "",
            "reply_template": "",
            "stop_after_match": True,
            "enabled": True,
            **AGENT_BLANK,
        }
    return {
        "name": command.name,
        "description": command.description,
        "aliases": ", ".join(command.aliases),
        "trigger": ", ".join(command.trigger),
        "action": command.action,
        "priority": str(command.priority),
        "conditions": [
            {"path": c.path, "op": c.op, "value": show_value(c.value)} for c in command.conditions
        ],
        "title_template": command.title_template,
        "timeline_template": command.timeline_template,
        "reply_template": command.reply_template,
        "stop_after_match": command.stop_after_match,
        "enabled": command.enabled,
        "agent": command.agent,
        "prompt_template": command.prompt_template,
        "reply": command.reply,
        "requires_approval": command.requires_approval,
    }


#: The ``run_agent`` fields of a new command.
AGENT_BLANK = {"agent": "", "prompt_template": "", "reply": False, "requires_approval": False}


def condition_rows(values: Mapping[str, Any]) -> list[dict]:
    """The command's condition rows and ``BLANK_CONDITIONS`` blank ones, for the template."""
    blank = {"path": "", "op": "eq", "value": ""}
    return list(values.get("conditions") or []) + [dict(blank)] * BLANK_CONDITIONS


def read_command_form(form: Mapping[str, Any]) -> tuple[dict, dict]:
    """``(definition, values)``: the definition for ``build_command`` and the fields as typed,
    to show again with errors. Condition rows are ``conditions-<n>-path|op|value``; rows with
    no path are left out."""
    indexes = sorted(
        {
            int(key.split("-")[1])
            for key in form
            if key.startswith("conditions-") and key.split("-")[1].isdigit()
        }
    )
    rows, conditions = [], []
    for index in indexes:
        path = _last(form, f"conditions-{index}-path")
        op = _last(form, f"conditions-{index}-op", "eq")
        text = _last(form, f"conditions-{index}-value")
        if not path:
            continue
        rows.append({"path": path, "op": op, "value": text})
        conditions.append({"path": path, "op": op, "value": read_value(text, op)})
    values = {
        "name": _last(form, "name"),
        "description": _last(form, "description"),
        "aliases": _last(form, "aliases"),
        "trigger": _last(form, "trigger"),
        "action": _last(form, "action"),
        "priority": _last(form, "priority", "100") or "100",
        "conditions": rows,
        # Templates keep their white space: line numbers in errors must match what was typed.
        "title_template": str(form.get("title_template") or ""),
        "timeline_template": str(form.get("timeline_template") or ""),
        "reply_template": str(form.get("reply_template") or ""),
        "stop_after_match": _checked(form, "stop_after_match", True),
        "enabled": _checked(form, "enabled", True),
        # run_agent only (ignored by the other actions).
        "agent": _last(form, "agent"),
        "prompt_template": str(form.get("prompt_template") or ""),
        "reply": _checked(form, "reply", False),
        "requires_approval": _checked(form, "requires_approval", False),
        "subscription": _last(form, "subscription"),
    }
    definition = {**values, "conditions": conditions}
    return definition, values


def field_errors(field: str | None, message: str) -> dict[str, str]:
    """``{field: message}`` for the template; ``conditions[2]`` also marks ``conditions``."""
    if not field:
        return {"form": message}
    errors = {field: message}
    if field.startswith("conditions"):
        errors["conditions"] = f"{field}: {message}"
    return errors


def settings_text(provider: str, settings: Mapping[str, Any] | None) -> str:
    """The settings the JSON textarea shows: all but those with their own field."""
    own = KNOWN_SETTINGS.get(provider, {})
    rest = {k: v for k, v in (settings or {}).items() if k not in own and k != REPLY}
    return json.dumps(rest, indent=2) if rest else ""


def read_settings_form(provider: str, form: Mapping[str, Any]) -> str | dict:
    """The endpoint settings as typed: the JSON textarea (``settings``) plus the fields of the
    provider's own options (``KNOWN_SETTINGS``, e.g. Alertmanager's ``group_by`` select; its
    first choice is the default, so it is left out). Returns the text as it is when it does
    not parse, so that validation can say where."""
    text = str(form.get("settings") or "").strip()
    own = KNOWN_SETTINGS.get(provider, {})
    try:
        settings = json.loads(text) if text else {}
    except ValueError:
        return text
    if not isinstance(settings, dict):
        return text
    for key, choices in own.items():
        value = _last(form, key)
        settings.pop(key, None)
        if value and not (choices and value == choices[0]):
            settings[key] = value
    settings.pop(REPLY, None)  # its own fields below: the token is never in the textarea
    settings[REPLY] = read_reply_form(provider, form)
    return settings


def read_reply_form(provider: str, form: Mapping[str, Any]) -> dict:
    """``settings.reply`` from the endpoint form's reply fields: ``reply_api_url``,
    ``reply_token`` (empty: keep the stored one), ``reply_token_env``, ``reply_<option>``,
    and ``reply_forget`` (drop the token); all empty with nothing stored: no reply settings."""
    module = get_provider(provider)
    reply: dict[str, Any] = {
        "api_url": _last(form, "reply_api_url").strip(),
        "token_env": _last(form, "reply_token_env").strip(),
    }
    token = _last(form, "reply_token").strip()
    if _last(form, "reply_forget") in ("1", "on", "true"):
        reply["token"] = None
    elif token:
        reply["token"] = token
    for option in module.reply_options if module else {}:
        reply[option] = _last(form, f"reply_{option}").strip()
    return reply


def reply_values(provider: str, settings: Mapping[str, Any] | None) -> dict[str, str]:
    """The reply fields as the form shows them (never the token)."""
    module = get_provider(provider)
    stored = (settings or {}).get(REPLY) or {}
    values = {"reply_api_url": stored.get("api_url", ""),
              "reply_token_env": stored.get("token_env", "")}  # fmt: skip
    for option in module.reply_options if module else {}:
        values[f"reply_{option}"] = str(stored.get(option, ""))
    return values
