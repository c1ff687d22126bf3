"""split_policies: where each policy starts, with ';' and '//' inside strings, comments, escapes."""

from __future__ import annotations

import cedarpy

from tessera.policy.source import split_policies


def starts(text: str) -> list[int]:
    return [p.line for p in split_policies(text)]


def test_each_policy_starts_at_its_first_token_and_ends_at_its_semicolon() -> None:
    text = 'permit(principal, action, resource);\n\n@id("b")\nforbid(principal, action, resource);\n'
    policies = split_policies(text)
    assert [(p.index, p.line) for p in policies] == [(0, 1), (1, 3)]
    assert policies[0].text == "permit(principal, action, resource);"
    assert policies[1].text == '@id("b")\nforbid(principal, action, resource);'


def test_semicolons_and_slashes_inside_strings_do_not_split() -> None:
    text = (
        '@id("a;b")\n'
        'permit(principal, action, resource) when { context.url == "http://x//y;z" };\n'
        'permit(principal, action, resource) when { context.s == "//;" };\n'
    )
    policies = split_policies(text)
    assert [p.line for p in policies] == [1, 3]
    assert policies[0].text.endswith('"http://x//y;z" };')


def test_escaped_quotes_stay_inside_the_string() -> None:
    text = (
        'permit(principal, action, resource) when { context.s == "say \\"hi; there\\" // ok" };\n'
        'permit(principal, action, resource) when { context.s == "back\\\\" };\n'
        "forbid(principal, action, resource);\n"
    )
    policies = split_policies(text)
    assert [p.line for p in policies] == [1, 2, 3]
    # Each piece is a whole policy that Cedar itself parses.
    for policy in policies:
        cedarpy.policies_to_json_str(policy.text)


def test_comments_are_skipped_even_with_semicolons_and_quotes() -> None:
    text = (
        '// header; with a semicolon and a "quote\n'
        "\n"
        "// the first policy\n"
        "permit(principal, action, resource) // trailing; comment\n"
        "  when { true }; // after the end; still a comment\n"
        "// a comment between policies\n"
        "forbid(principal, action, resource);\n"
        "// a comment at the very end; nothing follows\n"
    )
    policies = split_policies(text)
    assert [p.line for p in policies] == [4, 7]
    assert "trailing; comment" in policies[0].text


def test_multi_line_policies_report_their_first_line() -> None:
    text = "\n".join(
        [
            "",
            '@id("multi")',
            '@max_ttl("60")',
            "permit (",
            "  principal,",
            '  action == Action::"read",',
            "  resource",
            ")",
            "when {",
            '  context.s == "line;\\nbreak"',
            "};",
            "",
            "permit(principal, action, resource);",
        ]
    )
    assert starts(text) == [2, 13]


def test_a_multi_line_string_counts_its_lines() -> None:
    text = (
        'permit(principal, action, resource) when { context.s == "a\nb\nc" };\n'
        "forbid(principal, action, resource);"
    )
    assert starts(text) == [1, 4]


def test_unterminated_trailing_text_is_kept_as_a_policy_for_the_parser_to_reject() -> None:
    policies = split_policies("permit(principal, action, resource);\npermit(principal, action,\n")
    assert [p.line for p in policies] == [1, 2]
    assert policies[1].text.startswith("permit(principal, action,")


def test_empty_and_comment_only_text_has_no_policies() -> None:
    assert split_policies("") == []
    assert split_policies("  \n// only a comment; really\n\n") == []
