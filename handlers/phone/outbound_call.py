"""Place a phone call from your Twilio number to someone, connected to a persona.

    python -m handlers.phone.outbound_call +15551234567 --persona concise

Twilio's REST API places the call; when it is answered, Twilio fetches the call's TwiML
from our own webhook (`COZY_PUBLIC_URL/voice/telephone/incoming?persona=…`), which hands
out the one-time stream token as for a call coming in. So a running server is needed, and
the person called is the caller it remembers (their number, hashed). `TWILIO_API_BASE`
points the REST call elsewhere (a test's local fake of Twilio).
"""
from __future__ import annotations

import argparse
import sys
from urllib.parse import urlencode

import httpx

from config import PhoneSettings

NEEDED = {"TWILIO_ACCOUNT_SID": "twilio_account_sid", "TWILIO_AUTH_TOKEN": "twilio_auth_token",
          "TWILIO_PHONE_NUMBER": "twilio_number", "COZY_PUBLIC_URL": "public_url"}


class CallFailed(RuntimeError):
    pass


def place_call(settings: PhoneSettings, to: str, persona: str | None = None, timeout_s: float = 15.0) -> str:
    """Asks Twilio to call `to`; returns the call's SID."""
    missing = [name for name, attribute in NEEDED.items() if not getattr(settings, attribute)]
    if missing:
        raise CallFailed(f"an outbound call needs {', '.join(missing)} set")
    webhook = f"{settings.public_url}/voice/telephone/incoming"
    if persona:
        webhook += "?" + urlencode({"persona": persona})
    url = f"{settings.twilio_api_base}/2010-04-01/Accounts/{settings.twilio_account_sid}/Calls.json"
    try:
        response = httpx.post(url, auth=(settings.twilio_account_sid, settings.twilio_auth_token), timeout=timeout_s,
                              data={"To": to, "From": settings.twilio_number, "Url": webhook, "Method": "POST"})
    except httpx.HTTPError as exc:
        raise CallFailed(f"could not reach Twilio at {settings.twilio_api_base}: {exc}") from None
    if response.status_code >= 400:
        try:
            detail = response.json().get("message") or response.text
        except ValueError:
            detail = response.text
        raise CallFailed(f"Twilio refused the call ({response.status_code}): {str(detail)[:200]}")
    return response.json()["sid"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handlers.phone.outbound_call", description=__doc__.split("\n")[0])
    parser.add_argument("to", help="the number to call, E.164 (+15551234567)")
    parser.add_argument("--persona", help="the persona who speaks (default: the number's or the default persona)")
    args = parser.parse_args(argv)
    try:
        sid = place_call(PhoneSettings.from_env(), args.to, args.persona)
    except CallFailed as failed:
        print(f"error: {failed}", file=sys.stderr)
        return 2
    print(f"calling {args.to}: call {sid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
