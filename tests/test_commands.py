from __future__ import annotations

from bot.triggers.verbs import Command, help_text, parse_commands


def test_a_command_at_the_start_of_a_line() -> None:
    assert parse_commands("/shipmate fix") == [Command("fix", "", 1)]
    assert parse_commands("Thanks!\n/shipmate fix use the new parser\n") == [
        Command("fix", "use the new parser", 2)
    ]


def test_mention_of_the_app_works_like_the_slash_command() -> None:
    assert parse_commands("@shipmate-bot plan", app_slug="shipmate-bot") == [Command("plan", "", 1)]
    assert parse_commands("@shipmate-bot[bot] stop", app_slug="shipmate-bot") == [
        Command("stop", "", 1)
    ]
    assert parse_commands("@someone-else plan", app_slug="shipmate-bot") == []


def test_not_in_the_middle_of_a_line() -> None:
    assert parse_commands("please run /shipmate fix for me") == []


def test_ignored_in_quotes_code_and_html_comments() -> None:
    body = (
        "> /shipmate fix\n"
        "```\n/shipmate fix\n```\n"
        "~~~~\n/shipmate fix\n~~~~\n"
        "    /shipmate fix\n"
        "<!-- /shipmate fix -->\n"
        "<!--\n/shipmate fix\n-->\n"
        "`/shipmate fix`\n"
    )
    assert parse_commands(body) == []


def test_after_a_closed_fence_commands_count_again() -> None:
    body = "```python\nx = 1\n```\n/shipmate plan"
    assert parse_commands(body) == [Command("plan", "", 4)]


def test_case_and_punctuation() -> None:
    assert parse_commands("/Shipmate FIX.") == [Command("fix", "", 1)]


def test_unknown_verb_is_reported_as_unknown() -> None:
    (command,) = parse_commands("/shipmate deploy now")
    assert command.verb == "deploy" and not command.known


def test_bare_prefix_means_help() -> None:
    assert parse_commands("/shipmate") == [Command("help", "", 1)]


def test_help_lists_every_verb() -> None:
    text = help_text("shipmate-bot")
    for verb in ("plan", "fix", "apply", "stop", "retry", "status", "help"):
        assert f"`/shipmate {verb}`" in text
    assert "@shipmate-bot" in text


def test_empty_body() -> None:
    assert parse_commands(None) == [] and parse_commands("") == []


def test_apply_takes_large_and_no_other_verb_does() -> None:
    (apply,) = parse_commands("/shipmate apply --large")
    assert apply == Command("apply", "", 1, frozenset({"--large"}))
    assert apply.large and not apply.misplaced
    (plain,) = parse_commands("/shipmate apply")
    assert not plain.large and not plain.misplaced
    (shouted,) = parse_commands("/shipmate APPLY --LARGE please")
    assert shouted.large and shouted.args == "please"
    (fix,) = parse_commands("/shipmate fix --large the parser")
    assert not fix.large and fix.misplaced == ["--large"] and fix.args == "the parser"
    (notes,) = parse_commands("/shipmate fix --larger-font")  # not the flag: notes as given
    assert notes.args == "--larger-font" and not notes.flags
    assert "apply --large" in help_text()
