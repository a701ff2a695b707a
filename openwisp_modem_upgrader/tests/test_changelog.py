"""Release notes: Markdown rendered, hostile HTML and links removed (nh3)."""

from django.test import SimpleTestCase, TestCase

from ..admin.changelog import render_changelog
from . import ModemBuild, TestModemUpgraderMixin
from .test_admin import admin_url

HOSTILE = {
    # source: what must not survive
    "<script>alert(1)</script>\n\nok": ["<script", "alert(1)"],
    "<style>body{display:none}</style>ok": ["<style", "display:none"],
    "[x](javascript:alert(1))": ["javascript:", "href"],
    "[x](JaVaScRiPt:alert(1))": ["javascript:", "href"],
    "[x](&#106;avascript:alert(1))": ["avascript", "href"],
    "[x](vbscript:msgbox(1))": ["vbscript", "href"],
    '<a href="javascript:alert(1)">x</a>': ["javascript:", "href"],
    "![i](data:text/html;base64,PHNjcmlwdD4=)": ["data:", "src"],
    "<img src=x onerror=alert(1)>": ["onerror", "alert"],
    '<p onclick="alert(1)">x</p>': ["onclick", "alert"],
    "<svg onload=alert(1)><circle/></svg>": ["<svg", "onload"],
    "<iframe src='https://example.com'></iframe>": ["<iframe"],
    "<form action=/x><input name=a></form>": ["<form", "<input"],
    "<a href='/x' style='position:fixed'>y</a>": ["style", "position"],
    "<object data=x.swf></object><embed src=x.swf>": ["<object", "<embed"],
}


class TestRenderChangelog(SimpleTestCase):
    def test_hostile_html_and_links_removed(self):
        for source, forbidden in HOSTILE.items():
            with self.subTest(source=source):
                html = render_changelog(source).lower()
                for fragment in forbidden:
                    self.assertNotIn(fragment, html)

    def test_text_of_hostile_links_kept(self):
        html = render_changelog("see [the notes](javascript:alert(1)) ok")
        self.assertIn("the notes", html)
        self.assertIn(" ok", html)

    def test_markdown_survives(self):
        source = (
            "# Release M0R.2\n\n"
            "Fixes **faster** attach, _quieter_ logs.\n\n"
            "    uxfp --speed 921600 <b>\n\n"
            "* one\n* two\n\n"
            "3. third\n4. fourth\n\n"
            '[notes](https://example.com/notes "Notes") '
            "[mail](mailto:support@example.com) [local](/admin/) "
            "![chart](https://example.com/c.png) `a<b`\n\n"
            "> quoted\n\n---\n"
        )
        html = render_changelog(source)
        for fragment in (
            "<h1>Release M0R.2</h1>",
            "<strong>faster</strong>",
            "<em>quieter</em>",
            "<pre><code>uxfp --speed 921600 &lt;b&gt;\n</code></pre>",
            "<li>one</li>",
            '<ol start="3">',
            '<a href="https://example.com/notes" title="Notes" rel=',
            '<a href="mailto:support@example.com" rel=',
            '<a href="/admin/" rel=',
            '<img alt="chart" src="https://example.com/c.png">',
            "<code>a&lt;b</code>",
            "<blockquote>",
            "<hr>",
        ):
            self.assertIn(fragment, html)
        # links leave the admin without its referrer nor the opener
        self.assertIn('rel="noopener noreferrer nofollow"', html)

    def test_empty(self):
        self.assertEqual(render_changelog(""), "")
        self.assertEqual(render_changelog(None), "")


class TestChangelogOnBuildPage(TestModemUpgraderMixin, TestCase):
    def test_build_page_renders_clean_markdown(self):
        build = self._create_build(
            changelog=(
                "## Fixes\n* **attach** <img src=x onerror=alert(1)>\n"
                "* [x](javascript:alert(2))\n<script>alert(3)</script>"
            )
        )
        self.client.force_login(self._get_admin())
        response = self.client.get(admin_url(ModemBuild, "change", build.pk))
        self.assertEqual(response.status_code, 200)
        # the rendered notes (the form's textarea shows the source, escaped)
        page = response.content.decode()
        start = page.index('<div class="modem-changelog">')
        rendered = page[start : page.index("</div>", start)]
        self.assertIn("<h2>Fixes</h2>", rendered)
        self.assertIn("<strong>attach</strong>", rendered)
        self.assertIn('<img src="x">', rendered)
        for fragment in ("onerror", "javascript:", "alert(", "<script"):
            self.assertNotIn(fragment, rendered)
