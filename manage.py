#!/usr/bin/env python
import os
import secrets
import sys

# Commands that only read the code (models, migrations) and sign nothing run without a key, so a
# fresh clone can `makemigrations --check`; every other command, and every server, needs the real
# one (settings refuse to load without it).
KEYLESS_COMMANDS = {"makemigrations", "showmigrations", "sqlmigrate", "help"}

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsportal.settings")
    if sys.argv[1:2] and sys.argv[1] in KEYLESS_COMMANDS and not os.environ.get("SECRET_KEY"):
        os.environ["SECRET_KEY"] = secrets.token_urlsafe(50)  # throwaway: these commands never sign
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
