"""Release notes in Markdown, rendered safely.

Raw HTML in the source is not recognised as HTML (the parsers are removed),
so Markdown escapes it as text and only Markdown syntax produces markup.
Links and images are then kept only with http(s), mailto or relative targets
(Markdown itself would happily emit ``javascript:`` links).
"""

import markdown
from django.utils.safestring import mark_safe
from markdown.extensions import Extension
from markdown.treeprocessors import Treeprocessor

SAFE_SCHEMES = ("http://", "https://", "mailto:", "/", "#")


class DropUnsafeLinks(Treeprocessor):
    def run(self, root):
        for element in root.iter():
            for attribute in ("href", "src"):
                value = element.get(attribute)
                if value is None:
                    continue
                # Markdown escaped "&" in the source already; compare plainly
                target = value.strip().lower()
                if not target.startswith(SAFE_SCHEMES):
                    del element.attrib[attribute]


class SafeLinksExtension(Extension):
    def extendMarkdown(self, md):
        md.preprocessors.deregister("html_block")
        md.inlinePatterns.deregister("html")
        md.treeprocessors.register(DropUnsafeLinks(md), "modem_safe_links", 0)


def render_changelog(text):
    if not text:
        return ""
    html = markdown.markdown(text, extensions=["sane_lists", SafeLinksExtension()])
    return mark_safe(html)
