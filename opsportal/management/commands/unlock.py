import ipaddress

from django.core.management.base import BaseCommand, CommandError

from opsportal.lockout import unlock


class Command(BaseCommand):
    help = "Clear the sign-in lockout of USERNAME (from every client IP, or only --ip)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--ip", help="Only the lockout from this client IP (an IPv6 client: its /64).")

    def handle(self, *args, username: str, ip: str | None, **options):
        if ip:
            try:
                address = ipaddress.ip_address(ip)
            except ValueError:
                raise CommandError(f"--ip {ip!r} is not an IP address.") from None
            if isinstance(address, ipaddress.IPv6Address):
                address = ipaddress.IPv6Network((address, 64), strict=False).network_address
            ip = str(address)
        count = unlock(username, ip, via="command")
        where = f" from {ip}" if ip else ""
        if count:
            self.stdout.write(self.style.SUCCESS(f"Unlocked {username!r}{where}: {count} lockout row(s) removed."))
        else:
            self.stdout.write(f"No lockout rows for {username!r}{where}; nothing to do.")
