"""A dev mail catcher: an SMTP server that keeps every message, and a page listing them.

Run it with `python3 -m mailcatcher`: SMTP on $EMAIL_SMTP_PORT, HTTP on $PORT.
"""
