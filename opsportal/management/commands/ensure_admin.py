import os
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from opsportal.roles import ADMIN


class Command(BaseCommand):
    help = "Create the demo admin once. Password from OPSPORTAL_ADMIN_PASSWORD, else generated and printed once."

    def add_arguments(self, parser):
        parser.add_argument("--username", default=os.environ.get("OPSPORTAL_ADMIN_USER", "admin"))

    def handle(self, *args, username: str, **options):
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            self.stdout.write(f"Admin user {username!r} already exists (password unchanged).")
            return
        password = os.environ.get("OPSPORTAL_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        user = User.objects.create_superuser(username=username, email="", password=password)
        user.groups.add(Group.objects.get_or_create(name=ADMIN)[0])
        if os.environ.get("OPSPORTAL_ADMIN_PASSWORD"):
            self.stdout.write(f"Created admin {username!r} with the password from OPSPORTAL_ADMIN_PASSWORD.")
        else:
            self.stdout.write(self.style.WARNING(f"Created admin {username!r} with password: {password}"))
            self.stdout.write("This is shown once; change it in the admin or with `manage.py changepassword`.")
