"""The web dashboard: pages served by the API itself, drawn in the browser from /v1.

`pages` serves the page shell, the scripts and the vendored Plotly bundle (nothing from a
CDN); `session` exchanges an API key for an HttpOnly session cookie. Every number a page
shows comes from the same /v1 endpoints the SDK uses, under the same identity, so a page
can show nothing the API would refuse.
"""
