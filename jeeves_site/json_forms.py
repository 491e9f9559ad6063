"""The admin's JSON form field, held to the same limits as every other entrance.

Django's ``forms.JSONField`` catches only ``JSONDecodeError``: a value nested past
Python's recursion limit, or an integer too long to convert, raised out of the form
(a 500). This one refuses those, and anything ``statestore.values`` refuses (too
deep, NUL, lone surrogates, NaN), as a form error on the field.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db import models
from django.forms.fields import InvalidJSONInput, JSONString

from statestore.values import json_loads, json_problem


class BoundedJSONField(forms.JSONField):
    """A JSON form field that never raises anything but ValidationError."""

    def to_python(self, value: Any) -> Any:
        if self.disabled:
            return value
        if value in self.empty_values:
            return None
        if isinstance(value, list | dict | int | float | JSONString):
            return value
        try:
            converted = json_loads(value)
        except (ValueError, RecursionError):  # JSONDecodeError, NaN, too deep to parse
            raise ValidationError(
                self.error_messages["invalid"], code="invalid", params={"value": value}
            ) from None
        problem = json_problem(converted)
        if problem:
            raise ValidationError(f"This value {problem}.", code="invalid")
        return JSONString(converted) if isinstance(converted, str) else converted

    def bound_data(self, data: Any, initial: Any) -> Any:
        if self.disabled:
            return initial
        if data is None:
            return None
        try:
            converted = json_loads(data)
        except (ValueError, RecursionError):
            return InvalidJSONInput(data)
        # Shown back as typed when it cannot be rendered again (a huge integer).
        return InvalidJSONInput(data) if json_problem(converted) else converted


# For ModelAdmin.formfield_overrides.
JSON_FIELD_OVERRIDES = {models.JSONField: {"form_class": BoundedJSONField}}
