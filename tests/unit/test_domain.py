"""The domain's rules: validation of every input, groups, messages, cursors."""
from __future__ import annotations

import uuid

import pytest

from application.messaging import DEFAULT_PAGE, MAX_PAGE, parse_before, parse_limit
from domain import errors
from domain.events import Delivery
from domain.model import (
    GROUP,
    PRIVATE,
    Group,
    Message,
    cursor_position,
    is_after,
    normalised_username_key,
    username_key,
    validate_client_msg_id,
    validate_content,
    validate_cursor,
    validate_group_name,
    validate_id,
    validate_password,
    validate_username,
)

LONE_SURROGATE = "abc\ud800def"


# usernames ------------------------------------------------------------------
@pytest.mark.parametrize("name", ["abc", "a" * 32, "Alice_1", "bob.smith", "x-y-z", "___", "名前です"])
def test_valid_usernames_are_returned_unchanged(name):
    assert validate_username(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "ab", "a" * 33, "with space", "semi;colon", "at@sign", "tab\tname", "new\nline", "abc\n", None, 123, ["abc"]],
)
def test_invalid_usernames_are_refused(name):
    with pytest.raises(errors.InvalidUsername):
        validate_username(name)


def test_username_key_ignores_case():
    assert username_key("Alice") == username_key("ALICE") == username_key("alice")
    assert username_key("alice") != username_key("alicia")


# look-alike usernames (issue 13, point 1) ------------------------------------------
FULLWIDTH, CYRILLIC_A, MATH_BOLD = "ａｌｉｃｅ", "\u0430lice", "\U0001d41a\U0001d425\U0001d422\U0001d41c\U0001d41e"


@pytest.mark.parametrize("name", ["alice", "Alice", "ALICE", FULLWIDTH, "ＡＬＩＣＥ", MATH_BOLD])
def test_compatibility_and_case_forms_share_the_normalised_key(name):
    assert normalised_username_key(name) == "alice"


def test_the_normalised_key_keeps_letters_of_other_scripts_and_accents_apart():
    assert normalised_username_key(CYRILLIC_A) != "alice"  # refused as a mix instead
    assert normalised_username_key("josé") != normalised_username_key("jose")
    assert normalised_username_key("Straße") == normalised_username_key("STRASSE")
    assert normalised_username_key("ﾀﾅｶ") == normalised_username_key("タナカ")  # halfwidth katakana


@pytest.mark.parametrize("name", [FULLWIDTH, MATH_BOLD, "alice"])
def test_compatibility_forms_are_valid_names_and_keep_their_spelling(name):
    # They are refused as taken when "alice" exists (the repositories' unique key), not as invalid.
    assert validate_username(name) == name


@pytest.mark.parametrize("name", [CYRILLIC_A, "alphaα", "\u03b1lpha", "pаypal_1", "ΑΒΓабв"])
def test_names_that_mix_latin_cyrillic_or_greek_are_refused_saying_why(name):
    with pytest.raises(errors.InvalidUsername) as refused:
        validate_username(name)
    assert "mix scripts" in refused.value.message
    assert refused.value.code == "invalid_username"


def test_the_refusal_names_the_scripts():
    with pytest.raises(errors.InvalidUsername) as refused:
        validate_username(CYRILLIC_A)
    assert "(Cyrillic and Latin)" in refused.value.message


@pytest.mark.parametrize("name", [
    "山田たろう",  # Han + Hiragana
    "ヤマダ_タロー",  # Katakana, with the prolonged sound mark (Common, used by kana only)
    "tanaka田中",  # Latin + Han
    "東京tokyoとうきょう",  # Latin + Han + Hiragana
    "ﾀﾅｶ",  # halfwidth katakana
    "김kim",  # Hangul + Latin
    "李Lee",  # Han + Latin
    "ㄅㄆ李",  # Bopomofo + Han
    "москва",  # one script, not Latin
    "ελλάδα",
    "Zoë_ünï",
])
def test_one_script_and_the_east_asian_writing_systems_are_allowed(name):
    assert validate_username(name) == name


@pytest.mark.parametrize("name", ["김たろう", "ㄅたろう", "田中たろうκ"])
def test_east_asian_scripts_mix_only_as_their_writing_systems_do(name):
    with pytest.raises(errors.InvalidUsername, match="mix scripts"):
        validate_username(name)


@pytest.mark.parametrize("name", ["alice_2", "a.b-c_9", "007", "иван_99", "山田_1.x", "ｕｓｅｒ１２"])
def test_digits_and_punctuation_go_with_any_script(name):
    assert validate_username(name) == name


def test_digits_of_two_numbering_systems_are_refused():
    assert validate_username("١٢٣") == "١٢٣"  # Arabic-Indic alone
    with pytest.raises(errors.InvalidUsername, match="numbering systems"):
        validate_username("1١1")


@pytest.mark.parametrize("name", ["alice\u3164", "\uffa0bob", "al\u115fice"])
def test_invisible_letters_are_refused(name):
    # Hangul fillers are letters to \w and draw nothing: "alice" + U+3164 looks like "alice".
    with pytest.raises(errors.InvalidUsername, match="invisible"):
        validate_username(name)


@pytest.mark.parametrize("name", ["a½b", "ab\ufdfa"])
def test_a_name_must_keep_its_shape_once_normalised(name):
    # "½" is a digit to \w, but NFKC makes "1⁄2" of it; U+FDFA becomes 18 characters with spaces.
    with pytest.raises(errors.InvalidUsername, match="once normalised"):
        validate_username(name)


# passwords --------------------------------------------------------------------
@pytest.mark.parametrize("password", ["x" * 8, "x" * 1024, "        ", "pässwörd✓"])
def test_valid_passwords(password):
    assert validate_password(password) == password


@pytest.mark.parametrize("password", ["", "x" * 7, "x" * 1025, None, 12345678, "1234567\ud800"])
def test_invalid_passwords(password):
    with pytest.raises(errors.InvalidPassword):
        validate_password(password)


# content ----------------------------------------------------------------------
def test_content_up_to_the_limit_is_accepted():
    assert validate_content("x" * 4000, 4000) == "x" * 4000
    assert validate_content("x", 4000) == "x"


def test_content_over_the_limit_is_too_long():
    with pytest.raises(errors.ContentTooLong):
        validate_content("x" * 4001, 4000)


def test_content_limit_counts_characters_not_bytes():
    emoji = "\U0001f600" * 4000  # 16,000 UTF-8 bytes
    assert validate_content(emoji, 4000) == emoji


def test_content_limit_is_configurable():
    with pytest.raises(errors.ContentTooLong):
        validate_content("x" * 11, 10)
    assert validate_content("x" * 10, 10)


@pytest.mark.parametrize("content", ["", None, 42, ["hi"], {"text": "hi"}])
def test_empty_or_non_text_content_is_invalid(content):
    with pytest.raises(errors.InvalidContent):
        validate_content(content, 4000)


@pytest.mark.parametrize("content", [" ", "   \n\t ", "  padded  ", "<b>&amp;</b>"])
def test_content_is_kept_byte_for_byte(content):
    assert validate_content(content, 4000) == content


def test_content_with_a_lone_surrogate_is_invalid():
    with pytest.raises(errors.InvalidContent):
        validate_content(LONE_SURROGATE, 4000)


def test_content_errors_are_400_and_413_classes():
    assert issubclass(errors.InvalidContent, errors.InvalidInput)
    assert not issubclass(errors.ContentTooLong, errors.InvalidInput)


# group names, ids, client_msg_id -------------------------------------------------
@pytest.mark.parametrize("name", ["g", "x" * 100, " team ", "Équipe 🚀"])
def test_valid_group_names(name):
    assert validate_group_name(name) == name


@pytest.mark.parametrize("name", ["", "x" * 101, None, 7, LONE_SURROGATE])
def test_invalid_group_names(name):
    with pytest.raises(errors.InvalidInput):
        validate_group_name(name)


def test_a_uuid_string_is_a_valid_id():
    value = str(uuid.uuid4())
    assert validate_id(value) == value


@pytest.mark.parametrize("value", ["", "not-a-uuid", "1234", None, 42, str(uuid.uuid4()) + "x", [str(uuid.uuid4())]])
def test_invalid_ids(value):
    with pytest.raises(errors.InvalidInput) as raised:
        validate_id(value, "to_user_id")
    assert "to_user_id" in raised.value.message


def test_client_msg_id():
    assert validate_client_msg_id(None) is None
    assert validate_client_msg_id("a") == "a"
    assert validate_client_msg_id("k" * 128) == "k" * 128
    for bad in ["", "k" * 129, 5, LONE_SURROGATE]:
        with pytest.raises(errors.InvalidInput):
            validate_client_msg_id(bad)


# cursors ------------------------------------------------------------------------
def test_cursor_positions_order_numerically():
    assert cursor_position("10-0") == (10, 0)
    assert cursor_position("1700000000000-3") == (1700000000000, 3)
    assert is_after("10-0", "9-5")
    assert is_after("9-6", "9-5")
    assert not is_after("9-5", "9-5")
    assert not is_after("2-0", "10-0")  # numeric, not string, order
    assert is_after("1-0", None)


def test_validate_cursor():
    assert validate_cursor(None) is None
    assert validate_cursor("") is None
    assert validate_cursor("5-0") == "5-0"


@pytest.mark.parametrize(
    "cursor", ["abc", "5", "5-", "-5", "5-0-0", " 5-0", "5-0 ", "1" * 21 + "-0", 5, "\u0665-\u0660", "$", ">"]
)
def test_invalid_cursors(cursor):
    with pytest.raises(errors.InvalidCursor):
        validate_cursor(cursor)


# limit and before ------------------------------------------------------------------
def test_parse_limit():
    assert parse_limit(None) == DEFAULT_PAGE == 50
    assert parse_limit("") == 50
    assert parse_limit("1") == 1
    assert parse_limit("200") == MAX_PAGE == 200


@pytest.mark.parametrize("raw", ["0", "201", "-1", "1.5", "abc", " 5", "\u0665", "9" * 5000, "1e3"])
def test_malformed_or_too_large_limits_are_invalid(raw):
    with pytest.raises(errors.InvalidInput):
        parse_limit(raw)


def test_parse_before():
    assert parse_before(None) is None
    assert parse_before("") is None
    assert parse_before("17") == "17"
    for bad in ["x", "-1", "1" * 21, "\u0665", "1.0"]:
        with pytest.raises(errors.InvalidInput):
            parse_before(bad)


# groups ---------------------------------------------------------------------------
def test_group_rules():
    group = Group(id="g", name="n", owner_id="o", member_ids=["o", "a", "b"])
    assert group.is_member("a") and not group.is_member("z")
    group.require_member("b")
    with pytest.raises(errors.NotAMember):
        group.require_member("z")
    assert group.may_remove("a", "a")  # leave
    assert group.may_remove("o", "b")  # the owner removes
    assert not group.may_remove("a", "b")
    assert group.successor_owner("o") == "a"  # the longest-standing member
    assert group.successor_owner("a") == "o"
    assert Group(id="g", name="n", owner_id="o", member_ids=["o"]).successor_owner("o") is None
    assert group.public() == {"group_id": "g", "name": "n", "owner_id": "o", "member_ids": ["o", "a", "b"],
                              "kind": "group", "member_count": 3}


def test_group_public_is_a_copy():
    group = Group(id="g", name="n", owner_id="o", member_ids=["o"])
    group.public()["member_ids"].append("x")
    assert group.member_ids == ["o"]


# messages -------------------------------------------------------------------------
def test_private_message_object_has_exactly_the_contract_fields():
    message = Message(PRIVATE, "m", "a", "hi", 1702540800, to_user_id="b", client_msg_id="k")
    assert message.public() == {
        "type": "private",
        "id": "m",
        "from_user_id": "a",
        "to_user_id": "b",
        "content": "hi",
        "created_at": 1702540800,
    }
    assert Delivery(message, "3-0").public()["cursor"] == "3-0"


def test_group_message_object_has_exactly_the_contract_fields():
    message = Message(GROUP, "m", "a", "hi", 1702540800, group_id="g")
    assert Delivery(message, "3-0").public() == {
        "type": "group",
        "id": "m",
        "group_id": "g",
        "from_user_id": "a",
        "content": "hi",
        "created_at": 1702540800,
        "cursor": "3-0",
    }


@pytest.mark.parametrize(
    "message",
    [
        Message(PRIVATE, "m", "a", " x ", 5, to_user_id="b", client_msg_id="k"),
        Message(PRIVATE, "m", "a", "x", 5, to_user_id="b"),
        Message(GROUP, "m", "a", "x", 5, group_id="g"),
    ],
)
def test_message_records_round_trip(message):
    assert Message.from_record(message.to_record()) == message


@pytest.mark.parametrize(
    "message",
    [
        Message(PRIVATE, "m", "a", "x", 5, to_user_id="b", client_msg_id="k"),
        Message(PRIVATE, "m", "a", "x", 5, to_user_id="b", seq=3, edited_at=7),
        Message(GROUP, "m", "a", "x", 5, group_id="g", seq=2, deleted_at=9),
        Message(GROUP, "m", "a", "x", 5, group_id="g"),
    ],
)
def test_record_is_public_says_whether_to_record_adds_to_public(message):
    # The Redis inbox encodes one record for both when it says so.
    assert message.record_is_public == (message.to_record() == message.public())


def test_with_seq_is_replace_of_the_seq_alone():
    # with_seq lists the fields by hand (for speed): a field added to Message must be added there too.
    import dataclasses

    message = Message(type=GROUP, id="m", from_user_id="a", content="c", created_at=1, group_id="g",
                      client_msg_id="k")
    assert message.with_seq(7) == dataclasses.replace(message, seq=7)
    assert [f.name for f in dataclasses.fields(Message)] == [
        "type", "id", "from_user_id", "content", "created_at", "to_user_id", "group_id", "client_msg_id", "seq",
        "edited_at", "deleted_at"]


def test_message_init_is_the_dataclass_one():
    # Message.__init__ is written by hand (for speed): the same parameters, in the order and
    # with the defaults of the fields, and a Message as frozen, comparable and hashable as the
    # dataclass's own __init__ would make it.
    import dataclasses
    import inspect

    parameters = list(inspect.signature(Message.__init__).parameters.values())[1:]
    assert [(p.name, p.default) for p in parameters] == [
        (f.name, inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default)
        for f in dataclasses.fields(Message)]
    values = dict(type=PRIVATE, id="m", from_user_id="a", content="c", created_at=1, to_user_id="b",
                  group_id=None, client_msg_id="k", seq=3, edited_at=4, deleted_at=5)
    message = Message(**values)
    assert dataclasses.asdict(message) == values
    assert message == Message(*values.values()) and hash(message) == hash(Message(*values.values()))
    assert message != dataclasses.replace(message, seq=4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.seq = 4  # type: ignore[misc]
