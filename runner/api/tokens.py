"""Creating, revoking and checking API tokens.

A token is ``jr_`` followed by 32 random bytes (URL-safe base64): 256 bits that
nobody can guess, so unlike a password it needs no slow, salted hash to resist
brute force. The table stores its SHA-256, and a request's token is found by
hashing it and looking the hash up: that lookup reveals nothing about any stored
secret, and a stolen table gives no usable token.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from runner.api.models import ApiToken, name_taken

TOKEN_PREFIX = "jr_"
PREFIX_LENGTH = 10  # "jr_" and 7 characters of the secret: enough to tell tokens apart
# last_used_at is written at most this often per token, so reads stay reads.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_secret(secret: str) -> str:
    """The hex SHA-256 under which a token's secret is stored."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret() -> str:
    """A fresh token secret."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def issue(token: ApiToken) -> str:
    """Give an unsaved token a new secret (stored hashed); return the secret to show once."""
    secret = new_secret()
    token.prefix = secret[:PREFIX_LENGTH]
    token.secret_hash = hash_secret(secret)
    return secret


class TokenRefused(Exception):
    """A secret that names a token which may not be used; the message says why (401)."""


def create_token(name: str, user: AbstractBaseUser) -> tuple[ApiToken, str]:
    """Create a token called ``name`` acting as ``user``; return it and its secret,
    which is never shown again.

    Raises ValidationError naming ``name`` when it is blank, too long, or an active
    token's already, and ``user`` when that user is inactive or not staff (such a
    token could never authenticate).
    """
    problem = user_problem(user)
    if problem:
        raise ValidationError({"user": f"{user.get_username()!r} {problem}"})
    token = ApiToken(name=name.strip(), user=user)
    secret = issue(token)
    token.full_clean(validate_constraints=False)
    try:
        with transaction.atomic():
            token.save(force_insert=True)
    except IntegrityError:  # another process took the name since full_clean looked
        raise ValidationError({"name": name_taken(token.name)}) from None
    return token, secret


def revoke_token(name: str) -> int:
    """Revoke the active token called ``name``; return how many were revoked (0 or 1)."""
    return ApiToken.objects.filter(name=name, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )


def user_problem(user: AbstractBaseUser | None) -> str | None:
    """Why ``user`` may not own a working token (None when it may): the admin's own rule,
    an active staff user."""
    if user is None:
        return "no user: the token predates token owners; create a new one with --user"
    if not user.is_active:
        return "is deactivated"
    if not user.is_staff:
        return "is not staff"
    return None


def authenticate(secret: str) -> ApiToken | None:
    """The active token with this secret (its ``user`` loaded), or None; records when it
    was last used. Raises TokenRefused when the token exists but its user may no longer
    use it (deactivated, no longer staff, or none)."""
    if not secret.startswith(TOKEN_PREFIX):
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(secret_hash=hash_secret(secret), revoked_at=None)
        .first()
    )
    if token is None:
        return None
    problem = user_problem(token.user)
    if problem:
        owner = "it belongs to no user" if token.user is None else f"its user {problem}"
        raise TokenRefused(f"the API token cannot be used: {owner}")
    _touch(token)
    return token


def _touch(token: ApiToken) -> None:
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
