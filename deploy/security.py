"""Django settings that are about the browser's security, kept beside deploy/settings.py.

The Content-Security-Policy (django-csp): scripts only from Banditore itself, and its few inline
ones by a per-response nonce (`request.csp_nonce`); inline style attributes stay allowed (the
admin's own templates use them); images also from https (a post's media link) and data: URLs.
"""

from __future__ import annotations

from csp.constants import NONCE, NONE, SELF

CSP = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, "'unsafe-inline'"],
        "img-src": [SELF, "data:", "https:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "frame-ancestors": [SELF],
        "form-action": [SELF],
    }
}
