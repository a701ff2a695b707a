"""Release notes in Markdown, rendered safely.

Markdown passes raw HTML through and emits ``javascript:`` links as written,
so its output is cleaned by nh3 (the ammonia sanitizer): only the tags and
attributes Markdown itself produces survive, links only with http(s), mailto
or relative targets; ``<script>``/``<style>`` go with their content.
"""

import markdown
import nh3
from django.utils.safestring import mark_safe

ALLOWED_TAGS = {
    "a",
    "blockquote",
    "br",
    "code",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "img",
    "li",
    "ol",
    "p",
    "pre",
    "strong",
    "ul",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "ol": {"start"},
}
URL_SCHEMES = {"http", "https", "mailto"}


def render_changelog(text):
    if not text:
        return ""
    html = markdown.markdown(text, extensions=["sane_lists"])
    return mark_safe(
        nh3.clean(
            html,
            tags=ALLOWED_TAGS,
            attributes=ALLOWED_ATTRIBUTES,
            url_schemes=URL_SCHEMES,
            link_rel="noopener noreferrer nofollow",
        )
    )
