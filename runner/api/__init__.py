"""The JSON HTTP API under ``/api/``: bearer tokens or a staff session, django-ninja routes."""
