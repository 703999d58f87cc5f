"""Model responses as safe HTML: Markdown rendered with markdown-it-py, raw HTML never passed on.

Rendered once, when a sample is stored (`Sample.save`, and the imports that queue items), so the
claim, which runs for every rated item, only reads the stored HTML.
"""
from __future__ import annotations

from markdown_it import MarkdownIt

# CommonMark plus the tables and strikethrough chat models write. "html": False escapes any HTML in
# a response (a <script> in it is shown as text), and markdown-it refuses javascript:, vbscript:
# and data: link targets.
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


def render_markdown(text: str) -> str:
    """The HTML an annotator is shown for a model response (or any Markdown text)."""
    return _MARKDOWN.render(text or "")
