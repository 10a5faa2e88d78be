"""The plain-text alternative generated from HTML."""

import pytest

from posthouse.mime.text import html_to_text


@pytest.mark.parametrize(
    ("html", "text"),
    [
        (
            "<p>Hello <b>World</b></p><table><tr><td>a</td><td>b</td></tr></table>",
            "Hello World\n\na b\n",
        ),
        # Tag names in any case are the same tags.
        (
            "<P>Hello <B>World</B></P><TABLE><TR><TD>a</TD><Td>b</tD></TR></TABLE>",
            "Hello World\n\na b\n",
        ),
        ("<ul><LI>one<li>two</ul><Br>x<HR>y", "- one\n- two\n\nx\n\ny\n"),
        (
            '<A HREF="HTTPS://example.com/x">Click</A> <a href="http://e.org">http://e.org</a>',
            "Click (HTTPS://example.com/x) http://e.org\n",
        ),
        ('<IMG SRC="x.png" ALT="Logo"> and <img src="y.png">', "Logo and\n"),
        # Head, title, styles, scripts and comments are not text.
        (
            "<HEAD><TITLE>t</TITLE></HEAD><Style>p{}</STYLE><script>x()</script><!-- c -->ok",
            "ok\n",
        ),
        # Whitespace that entities bring back is folded like any other.
        ("a&nbsp;&nbsp;b &#9; c<br>  d &amp; e", "a b c\nd & e\n"),
        ("<p>one</p>\n\n\n<p>two</p>", "one\n\ntwo\n"),
        ("x\u2003\u3000y\r\nz", "x y z\n"),
        # Names that only start like a block tag are not block tags.
        ("<param>a<para>b<pre>c</pre>", "ab\n\nc\n"),
        # mailto: and tel: targets are kept (without the scheme or a ?subject=).
        (
            '<a href="mailto:help@shop.example?subject=Hi">Write to us</a>, '
            '<A HREF="tel:+15551234">call</A> or <a href="mailto:a@b.example">a@b.example</a>',
            "Write to us (help@shop.example), call (+15551234) or a@b.example\n",
        ),
        # Preformatted text keeps its line breaks and indentation.
        (
            "<p>Code:</p><PRE>\nline one\n    indented &lt;b&gt;\n\nlast</PRE><p>after</p>",
            "Code:\n\nline one\n    indented <b>\n\nlast\n\nafter\n",
        ),
        # Ordered lists are numbered, from start= when given; unordered ones stay dashed.
        (
            "<ol><li>first</li><LI>second</li></ol><ol start='3'><li>third</ol>"
            "<ul><li>dash</li></ul>",
            "1. first\n2. second\n\n3. third\n\n- dash\n",
        ),
    ],
)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text
