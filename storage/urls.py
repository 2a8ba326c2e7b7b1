"""Service URLs (PostgreSQL, Redis) as they may be shown: in errors and logs, never a password."""
from __future__ import annotations

import re
from urllib.parse import urlsplit


def without_password(url: str) -> str:
    """The URL without its password, for logs and errors."""
    userinfo, at, _ = urlsplit(url).netloc.rpartition("@")
    if at and ":" in userinfo:
        url = url.replace(f"{userinfo}@", f"{userinfo.partition(':')[0]}:***@", 1)
    return re.sub(r"(?<=[?&]password=)[^&#]*", "***", url)
