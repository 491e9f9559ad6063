"""API tokens: only a hash of each secret is stored."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from runner.validation import validate_printable_name


class ApiToken(models.Model):
    """A bearer token for the HTTP API, identified by its name and the secret's first characters.

    The secret itself is shown once, when the token is created; the table keeps
    its SHA-256 (see ``runner.api.tokens`` for why a fast hash is right here). A
    request with the token acts as ``user``, with that user's Django permissions,
    for as long as the user is active and staff.
    """

    name = models.CharField(
        max_length=100,
        validators=[validate_printable_name],
        help_text="Who or what uses this token.",
    )
    # Null only for tokens made before tokens had owners: those no longer authenticate.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        related_name="api_tokens",
        help_text="The token acts as this user, with this user's permissions.",
    )
    prefix = models.CharField(
        max_length=16, editable=False, help_text="The token's first characters, to recognise it."
    )
    secret_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        db_table = "api_tokens"
        verbose_name = "API token"
        ordering = ["name", "-created_at"]
        constraints = [
            # A revoked token keeps its row (and name) for the record; a new one may reuse it.
            models.UniqueConstraint(
                fields=["name"], condition=Q(revoked_at__isnull=True), name="api_tokens_active_name"
            ),
            models.CheckConstraint(condition=~Q(name=""), name="api_tokens_name_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def clean(self) -> None:
        """Names are unique among active tokens (the constraint's rule, with a readable
        message in the admin form, which cannot check a constraint on ``revoked_at``);
        the owner is an active staff user (``tokens.user_problem``'s rule)."""
        if self.user_id is not None and not (self.user.is_active and self.user.is_staff):
            raise ValidationError(
                {
                    "user": f"{self.user.get_username()!r} is not an active staff user, "
                    "so the token could never be used"
                }
            )
        active = ApiToken.objects.filter(name=self.name, revoked_at__isnull=True)
        if self.revoked_at is None and active.exclude(pk=self.pk).exists():
            raise ValidationError({"name": name_taken(self.name)})

    @property
    def revoked(self) -> bool:
        """True once the token no longer authenticates."""
        return self.revoked_at is not None


def name_taken(name: str) -> str:
    """Why a token cannot be called ``name``: an active one is already."""
    return f"an active API token is already called {name!r}; revoke it first"


class ConfigAccess(models.Model):
    """No table: it carries the permissions to read and to change the runner's
    configuration over HTTP (``GET /config``, ``POST /config/apply``)."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("view_config", "Can view the runner configuration"),
            ("change_config", "Can change the runner configuration"),
        ]

    def __str__(self) -> str:
        return "runner configuration"
