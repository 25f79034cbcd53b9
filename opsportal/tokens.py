"""API token authentication against hashed keys (opsportal.models.ApiToken).

Clients send the same header as before (`Authorization: Token <key>`); keys that existed before
hashing keep working (the migration hashed them in place). A key the portal does not know, or no
longer knows, gets a 401 that says how to get a new one.
"""

from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from opsportal.models import ApiToken

UNKNOWN_KEY = (
    "Invalid or revoked token. Keys are shown only once: sign in with POST /api/auth/token/ for a new one, "
    "or ask an admin."
)


class HashedTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key: str):
        token = ApiToken.for_key(key)
        if token is None:
            raise AuthenticationFailed(UNKNOWN_KEY)
        if not token.user.is_active:
            raise AuthenticationFailed("User inactive or deleted.")
        token.touch()
        return token.user, token
