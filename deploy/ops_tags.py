"""`{% load ops %}{% ops_status as ops %}`: the operator's status on the admin home
(registered under TEMPLATES' "libraries" in deploy/settings.py; deploy is not an app)."""

from __future__ import annotations

from django import template

from deploy.ops import ops_status

register = template.Library()
register.simple_tag(ops_status, name="ops_status")
