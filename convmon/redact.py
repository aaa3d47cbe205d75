"""Masking of secrets in settings, URLs and messages: the one mechanism for everything printed or logged.

* `mask_url(url)`: the URL with its userinfo password (`scheme://user:***@host`; a lone userinfo
  such as `https://TOKEN@host` becomes `***@host`) and every query/fragment parameter whose name
  looks secret (`?token=***`) masked; Slack webhook paths become `/services/***`. A URL without
  secrets comes back unchanged, character for character.
* `mask_text(text)`: `mask_url` applied to every `scheme://…` inside free text (error messages).
* `mask_data(value)`: a settings model (or dict/list) as plain JSON-able data with `SecretStr`
  fields, values under secret-looking names and secrets inside URLs masked (`convmon config show`).
* `describe_validation_error(e)`: a pydantic ValidationError as "field: why" lines, never the input.

A name looks secret when one of its words (split at `_`, `-`, `.`, camelCase) is one of SECRET_WORDS
(`routing_key`, `X-Amz-Signature`, `apiKey`, `client_secret` …), unless its last word says it only
refers to a secret (`url_env`, `routing_key_env`, `secrets_file`): those name where the secret is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any
from urllib.parse import unquote_plus

from pydantic import BaseModel, SecretBytes, SecretStr, ValidationError

MASK = "***"

SECRET_WORDS = frozenset({
    "token", "key", "secret", "secrets", "password", "passwd", "pwd", "passphrase", "signature", "sig",
    "auth", "apikey", "credential", "credentials", "private",
})
# A last word that makes the name a reference to a secret (where it is), not the secret itself.
REFERENCE_WORDS = frozenset({"env", "file", "path", "dir", "url", "uri", "endpoint", "type", "mechanism"})

_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>`]*")
_SPLIT = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<netloc>[^/?#]*)(?P<path>[^?#]*)(?P<tail>.*)$",
                    re.S)
_PARAM = re.compile(r"(?P<sep>[?&;#])(?P<name>[^=&;#?]+)=(?P<value>[^&;#]*)")
# Hosts whose webhook URLs carry the secret in the path rather than the query.
_PATH_SECRET_HOSTS = ("hooks.slack.com",)


def is_secret_name(name: str) -> bool:
    """True for `password`, `sasl_password`, `routing_key`, `apiKey`, `X-Amz-Signature`; False for `url_env`."""
    words = [w.lower() for w in _WORDS.findall(unquote_plus(str(name)))]
    if not words or words[-1] in REFERENCE_WORDS:
        return False
    return any(w in SECRET_WORDS for w in words)


def _mask_param(m: re.Match) -> str:
    if m["value"] and is_secret_name(m["name"]):
        return f"{m['sep']}{m['name']}={MASK}"
    return m.group(0)


def mask_url(url: str) -> str:
    """`url` with its password, secret query/fragment parameters (and Slack webhook path) masked."""
    m = _SPLIT.match(url)
    if m is None:
        return url
    netloc, path, tail = m["netloc"], m["path"], m["tail"]
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")  # a raw "@" in the password stays in userinfo
        user, colon, password = userinfo.partition(":")
        if colon:
            userinfo = f"{user}:{MASK}" if password else userinfo
        elif userinfo:
            userinfo = MASK  # a lone userinfo is a token (https://TOKEN@host)
        netloc = f"{userinfo}@{host}"
    host = netloc.rpartition("@")[2].rsplit(":", 1)[0].lower()
    if path.strip("/") and any(host == h or host.endswith("." + h) for h in _PATH_SECRET_HOSTS):
        path = "/services/" + MASK if path.startswith("/services/") else "/" + MASK
    if tail:
        tail = _PARAM.sub(_mask_param, tail)
    return f"{m['scheme']}{netloc}{path}{tail}"


def mask_text(text: str) -> str:
    """`text` with every URL in it passed through `mask_url`."""
    return _URL.sub(lambda m: mask_url(m.group(0)), str(text))


def mask_data(value: Any, name: str = "") -> Any:
    """JSON-able data of `value` (a pydantic model, mapping, list, scalar) with every secret masked."""
    if isinstance(value, (SecretStr, SecretBytes)):
        return MASK if value.get_secret_value() else ""
    if isinstance(value, BaseModel):
        return {k: mask_data(getattr(value, k), k) for k in type(value).model_fields}
    if isinstance(value, Mapping):
        return {str(k): mask_data(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [mask_data(v, name) for v in value]
    if isinstance(value, PurePath):
        value = str(value)
    if name and is_secret_name(name) and value not in (None, "") and not isinstance(value, bool):
        return MASK
    if isinstance(value, str):
        return mask_text(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return mask_text(str(value))


def describe_validation_error(e: ValidationError, env_prefix: str = "") -> str:
    """One line per error: the field (and its environment variable) and why, without the input value."""
    lines = []
    for err in e.errors(include_input=False, include_url=False, include_context=False):
        loc = [str(p) for p in err.get("loc", ())]
        field = ".".join(loc) or "(settings)"
        if env_prefix and loc and all(isinstance(p, str) for p in err.get("loc", ())):
            field += f" ({env_prefix}{'__'.join(loc).upper()} or the config file)"
        lines.append(f"{field}: {mask_text(err.get('msg', 'invalid'))}")
    head = f"{len(lines)} invalid setting(s) (values not shown)"
    return head + (":\n  " + "\n  ".join(lines) if lines else "")
