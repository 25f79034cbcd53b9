"""One module per outbound format, each registered here with one line."""

from incidents.notifications.formats import email, generic, slack
from incidents.notifications.registry import register_format

register_format("json", "Generic JSON", generic.render)
register_format("slack", "Slack-compatible text", slack.render)
register_format("email", "E-mail", email.render, webhook=False)
