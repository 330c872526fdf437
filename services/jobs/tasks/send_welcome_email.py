"""Send the welcome email through the SMTP server at EMAIL_SMTP_PORT (the mail catcher)."""

from __future__ import annotations

import os
import smtplib
from email.message import EmailMessage
from typing import Any

TASK_ID = "send-welcome-email"
SENDER = "welcome@devstack.example"


def run(payload: dict[str, Any], ctx: Any) -> dict[str, Any]:
    if not payload.get("email"):
        raise ctx.fail("the payload has no email")
    port = os.environ.get("EMAIL_SMTP_PORT")
    if not port:
        raise ctx.fail("EMAIL_SMTP_PORT is not set (see `devstack env jobs EMAIL_SMTP_PORT`)")
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = payload["email"]
    message["Subject"] = f"Welcome, {payload.get('name') or payload['email']}!"
    message.set_content("Your account is ready.\n")
    # A refused connection raises: the job is retried with backoff until email is up.
    with smtplib.SMTP("127.0.0.1", int(port), timeout=10) as smtp:
        smtp.send_message(message)
    ctx.log(f"welcome email sent to {payload['email']}")
    return {"sent_to": payload["email"]}
