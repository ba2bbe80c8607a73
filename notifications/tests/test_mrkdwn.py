from notifications.mrkdwn import cut, escape, markdown_to_mrkdwn, split_chunks


def test_bold_becomes_slack_bold_and_italics_slack_italics():
    assert markdown_to_mrkdwn("a **big** and *small* b") == "a *big* and _small_ b"
    assert markdown_to_mrkdwn("__also__ bold") == "*also* bold"


def test_bold_italics_become_slack_bold_around_italics():
    assert markdown_to_mrkdwn("a ***big*** b") == "a *_big_* b"
    assert markdown_to_mrkdwn("___also___") == "*_also_*"


def test_headings_become_bold_lines():
    assert markdown_to_mrkdwn("# Root cause\n## **Next** steps ##") == (
        "*Root cause*\n*Next steps*"
    )


def test_code_spans_in_headings_are_left_as_written():
    assert markdown_to_mrkdwn("## Fix `a*b` in **values.yaml**") == (
        "*Fix `a*b` in values.yaml*"
    )


def test_code_spans_and_fences_are_left_as_written():
    text = "run `**not bold**` now\n```\n# not a heading\n**x**\n```\n**y**"
    assert markdown_to_mrkdwn(text) == (
        "run `**not bold**` now\n```\n# not a heading\n**x**\n```\n*y*"
    )


def test_tilde_fences_are_left_as_written_and_shown_as_code():
    text = "~~~yaml\n# not a heading\n**x**: ~~y~~\n~~~\n**z**"
    assert markdown_to_mrkdwn(text) == (
        "```yaml\n# not a heading\n**x**: ~~y~~\n```\n*z*"
    )


def test_links_lists_and_strikes_are_converted():
    text = "- see [docs](https://example.com/a?b=1&c=2)\n* ~~old~~ new"
    assert markdown_to_mrkdwn(text) == (
        "• see <https://example.com/a?b=1&amp;c=2|docs>\n• ~old~ new"
    )


def test_slack_control_characters_never_ping_or_link():
    assert (
        markdown_to_mrkdwn("<!channel> & <@U1>") == "&lt;!channel&gt; &amp; &lt;@U1&gt;"
    )
    assert escape("a<b>") == "a&lt;b&gt;"


def test_japanese_text_and_emoji_pass_through():
    assert markdown_to_mrkdwn("**ディスク容量不足** 🔥") == "*ディスク容量不足* 🔥"


def test_cut_ends_long_text_with_an_ellipsis():
    assert cut("abcdef", 4) == "abc…"
    assert cut("abc", 4) == "abc"


def test_split_chunks_keeps_each_piece_in_the_limit_and_fences_closed():
    text = "intro\n```\n" + "\n".join(f"line {i}" for i in range(400)) + "\n```\nend"
    chunks = split_chunks(text, 500)
    assert len(chunks) > 1
    assert all(len(c) <= 500 for c in chunks)
    assert all(c.count("```") % 2 == 0 for c in chunks)
    joined = "\n".join(chunks)
    assert "line 0" in joined and "line 399" in joined and joined.endswith("end")


def test_split_chunks_cuts_a_line_longer_than_the_limit():
    chunks = split_chunks("x" * 1200, 500)
    assert all(len(c) <= 500 for c in chunks)
    assert "".join(chunks) == "x" * 1200
