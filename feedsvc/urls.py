"""URL checks and normalisation: every URL goes out as one valid URI (RFC 3986)."""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit, urlunsplit

# RFC 3986 section 2: unreserved and reserved characters stay as they are; "%" too, so
# that an already encoded URL is not encoded twice (which would change its entry id).
_SAFE = "!#$&'()*+,/:;=?@[]~-._%"
_LONE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def normalize_url(raw: object) -> str:
    """Return `raw` as an absolute http(s) URI, percent-encoded; raise ValueError if it is not one."""
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError("must be an absolute http(s) URL, e.g. https://example.com/story")
    parts = urlsplit(raw.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{raw.strip()!r} is not an absolute http(s) URL")
    netloc = _netloc(parts, _ascii_host(parts.hostname, raw.strip()))
    path = _encode(parts.path) or "/"
    return urlunsplit((parts.scheme.lower(), netloc, path, _encode(parts.query), _encode(parts.fragment)))


def _ascii_host(host: str, raw: str) -> str:
    """IDNA-encode a host name (RFC 3490); keep IP literals as they are."""
    if ":" in host:
        return f"[{host}]"
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError(f"{raw!r} has an invalid host name ({exc})") from None


def _netloc(parts, host: str) -> str:
    """Rebuild user info, host (RFC 3490 IDNA) and port; an invalid port is an error."""
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{parts.geturl()!r} has an invalid port") from None
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{_encode(userinfo)}@{host}" if userinfo else host
    return f"{netloc}:{port}" if port is not None else netloc


def _encode(component: str) -> str:
    """Percent-encode spaces, non-ASCII and other unsafe characters as UTF-8."""
    return _LONE_PERCENT.sub("%25", quote(component, safe=_SAFE))
