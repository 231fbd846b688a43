"""The web page of ``calib serve`` (``GET /``): one self-contained HTML file, no CDN.

``page.html`` beside this module: the models and their versions, each version's metadata and
report (in a sandboxed frame), and a drop zone where a technician drops a readings file and
downloads the predictions. It talks to the service's own JSON API only; with a token, it asks
for it once and keeps it for the browser tab (``sessionStorage``).
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files

__all__ = ["page_html"]


@lru_cache(maxsize=1)
def page_html() -> str:
    """The page's HTML text."""
    return files(__package__).joinpath("page.html").read_text(encoding="utf-8")
