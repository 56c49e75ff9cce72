import pytest

import graphsurgeon as gs
from graphsurgeon._src.select import match, select

NAMES = [
    "vgg_16/fc7/weights", "vgg_16/fc8/weights", "vgg_16/fc8/biases", "vgg_16/fc8_new/weights",
    "InceptionV3/Mixed_7a/Branch_0/w", "InceptionV3/Mixed_7c/Branch_1/w", "InceptionV3/Mixed_6e/w",
    "Variable", "Variable_1", "Variable_17", "hidden1/weights", "hidden2/weights", "hidden3/weights",
]


def test_anchored_on_slash_never_prefix_of_a_sibling():
    assert match("vgg_16/fc8", NAMES) == ["vgg_16/fc8/biases", "vgg_16/fc8/weights"]


def test_glob_character_class_and_star_stay_within_a_scope():
    assert match("hidden[12]", NAMES) == ["hidden1/weights", "hidden2/weights"]
    assert match("InceptionV3/Mixed_7*", NAMES) == ["InceptionV3/Mixed_7a/Branch_0/w", "InceptionV3/Mixed_7c/Branch_1/w"]
    assert match("InceptionV3/*/w", NAMES) == ["InceptionV3/Mixed_6e/w"]


def test_double_star_crosses_scopes():
    assert match("InceptionV3/**/w", NAMES) == [
        "InceptionV3/Mixed_6e/w", "InceptionV3/Mixed_7a/Branch_0/w", "InceptionV3/Mixed_7c/Branch_1/w"]


def test_auto_named_variables():
    assert match("Variable", NAMES) == ["Variable"]
    assert match("Variable_1?", NAMES) == ["Variable_17"]
    assert match("re:Variable(_[0-9]+)?", NAMES) == ["Variable", "Variable_1", "Variable_17"]


def test_regex_must_match_a_whole_scope():
    assert match("re:vgg_16/fc[78]", NAMES) == ["vgg_16/fc7/weights", "vgg_16/fc8/biases", "vgg_16/fc8/weights"]


def test_include_exclude_and_tensor_suffix():
    assert select(NAMES, include=["vgg_16"], exclude=["vgg_16/fc8:0"]) == ["vgg_16/fc7/weights", "vgg_16/fc8_new/weights"]


def test_no_match_is_an_error_naming_the_closest_scopes():
    with pytest.raises(gs.PatternError) as e:
        match("vgg_16/fc9", NAMES)
    assert "vgg_16/fc9" in str(e.value) and "vgg_16/fc8" in str(e.value)


@pytest.mark.parametrize("bad", ["", "/", "re:(", "hidden[1"])
def test_malformed_patterns(bad):
    with pytest.raises(gs.PatternError):
        match(bad, NAMES)
