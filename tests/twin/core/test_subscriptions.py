"""SubscriptionTree: idempotent add, remove, len, and a deterministic delivery order."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.core.errors import TopicError
from twin.core.subscriptions import SubscriptionTree
from twin.core.topics import matches

DEV = "01" + "ab" * 16
CMD = f"medtwin/v1/acme/{DEV}/cmd"


def _match(tree: SubscriptionTree[Any], topic: str) -> list[Any]:
    """``tree.match`` as a list (the return type is any ordered sequence)."""
    return list(tree.match(topic))


def _tree(*subscriptions: tuple[str, str]) -> SubscriptionTree[str]:
    tree: SubscriptionTree[str] = SubscriptionTree()
    for topic_filter, subscriber in subscriptions:
        tree.add(topic_filter, subscriber)
    return tree


def test_empty_tree() -> None:
    tree = _tree()
    assert len(tree) == 0
    assert _match(tree, "a/b") == []
    assert tree.remove("a/b", "x") is False


def test_add_is_idempotent() -> None:
    tree = _tree(("a/+", "s"), ("a/+", "s"), ("a/+", "s"))
    assert len(tree) == 1
    assert _match(tree, "a/b") == ["s"]


def test_len_counts_filter_subscriber_pairs() -> None:
    tree = _tree(("a/+", "s"), ("a/#", "s"), ("a/+", "t"), ("#", "u"))
    assert len(tree) == 4


def test_subscriber_matching_through_several_filters_is_returned_once() -> None:
    tree = _tree(("a/b", "s"), ("a/+", "s"), ("a/#", "s"), ("#", "s"), ("+/b", "s"))
    assert _match(tree, "a/b") == ["s"]


def test_remove_returns_whether_the_subscription_existed() -> None:
    tree = _tree(("a/+", "s"), ("a/+", "t"))
    assert tree.remove("a/+", "s") is True
    assert len(tree) == 1
    assert _match(tree, "a/b") == ["t"]
    assert tree.remove("a/+", "s") is False
    assert len(tree) == 1


@pytest.mark.parametrize(
    ("topic_filter", "subscriber"),
    [("a/+", "nobody"), ("a/b", "s"), ("a", "s"), ("a/+/c", "s"), ("#", "s"), ("a/#", "s")],
)
def test_remove_of_an_absent_subscription_changes_nothing(
    topic_filter: str, subscriber: str
) -> None:
    tree = _tree(("a/+", "s"))
    assert tree.remove(topic_filter, subscriber) is False
    assert len(tree) == 1
    assert _match(tree, "a/b") == ["s"]


def test_remove_only_affects_its_own_filter() -> None:
    tree = _tree(("a/+", "s"), ("a/#", "s"))
    assert tree.remove("a/+", "s")
    assert _match(tree, "a/b") == ["s"]  # still subscribed through a/#
    assert tree.remove("a/#", "s")
    assert _match(tree, "a/b") == []
    assert len(tree) == 0


def test_remove_then_add_again() -> None:
    tree = _tree(("a/b", "s"))
    tree.remove("a/b", "s")
    tree.add("a/b", "s")
    assert len(tree) == 1
    assert _match(tree, "a/b") == ["s"]


@pytest.mark.parametrize("topic_filter", ["", "a/#/b", "a+", "#a", "a\x00"])
def test_add_refuses_a_malformed_filter_and_changes_nothing(topic_filter: str) -> None:
    tree = _tree(("a/b", "s"))
    with pytest.raises(TopicError):
        tree.add(topic_filter, "t")
    assert len(tree) == 1
    assert _match(tree, "a/b") == ["s"]


def test_subscribers_of_one_filter_come_in_subscription_order() -> None:
    names = [f"dev{i}" for i in (5, 3, 9, 1, 7)]
    tree = _tree(*(("a/b", n) for n in names))
    assert _match(tree, "a/b") == names


def test_readded_subscriber_moves_to_the_end() -> None:
    tree = _tree(("a", "x"), ("a", "y"), ("a", "z"))
    tree.remove("a", "x")
    tree.add("a", "x")
    assert _match(tree, "a") == ["y", "z", "x"]


def test_match_order_is_stable_across_calls_and_identical_trees() -> None:
    subs = [("#", "h"), ("a/+/c", "p"), ("a/b/c", "e"), ("+/b/#", "q"), ("a/#", "r"),
            ("+/+/+", "w"), ("a/b/c", "e2")]
    first = _tree(*subs)
    second = _tree(*subs)
    order = _match(first, "a/b/c")
    assert sorted(order) == sorted({s for _, s in subs})
    for _ in range(3):
        assert _match(first, "a/b/c") == order
    assert _match(second, "a/b/c") == order


def test_match_does_not_change_the_tree() -> None:
    tree = _tree(("a/#", "s"))
    _match(tree, "x/y/z")
    _match(tree, "a/b/c/d")
    assert len(tree) == 1
    assert tree.remove("a/#", "s")


def test_hash_matches_the_parent_level() -> None:
    tree = _tree((f"{CMD}/#", "dev"))
    assert _match(tree, CMD) == ["dev"]
    assert _match(tree, f"{CMD}/quarantine") == ["dev"]
    assert _match(tree, f"medtwin/v1/acme/{DEV}/telemetry") == []


def test_dollar_topics_are_not_matched_by_leading_wildcards() -> None:
    tree = _tree(("#", "all"), ("+/load", "plus"), ("$SYS/#", "sys"), ("$SYS/+", "sys1"))
    assert _match(tree, "$SYS/load") == ["sys", "sys1"]
    assert _match(tree, "$SYS") == ["sys"]
    assert _match(tree, "x/load") == ["all", "plus"]


def test_per_device_command_subscriptions_stay_separate() -> None:
    devices = ["01" + f"{i:02x}" * 16 for i in range(50)]
    tree: SubscriptionTree[str] = SubscriptionTree()
    for dev in devices:
        tree.add(f"medtwin/v1/acme/{dev}/cmd/#", dev)
    tree.add("medtwin/v1/acme/+/cmd/#", "auditor")
    assert len(tree) == 51
    for dev in devices:
        assert _match(tree, f"medtwin/v1/acme/{dev}/cmd/quarantine") == [dev, "auditor"]


def test_subscribers_may_be_any_hashable() -> None:
    tree: SubscriptionTree[tuple[str, int]] = SubscriptionTree()
    tree.add("a", ("client", 1))
    tree.add("a", ("client", 2))
    assert _match(tree, "a") == [("client", 1), ("client", 2)]


FILTERS = ["#", "+", "a", "a/#", "a/+", "+/b", "a/b", "+/+", "$SYS/#", "+/#", "a/b/#"]
TOPICS = ["a", "a/b", "b/b", "a/c", "$SYS", "$SYS/b", "a/b/c", ""]
operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from(FILTERS), st.integers(0, 3)),
        st.tuples(st.just("remove"), st.sampled_from(FILTERS), st.integers(0, 3)),
        st.tuples(st.just("match"), st.sampled_from(TOPICS), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=400, deadline=None)
@given(operations)
def test_interleaved_adds_removes_and_matches_agree_with_a_model(
    ops: list[tuple[str, str, int]],
) -> None:
    # Matches are asked for between changes, so any result kept from before a change (a
    # cache, an index) must not leak into answers after it.
    tree: SubscriptionTree[int] = SubscriptionTree()
    model: set[tuple[str, int]] = set()
    for op, text, subscriber in ops:
        if op == "add":
            tree.add(text, subscriber)
            model.add((text, subscriber))
        elif op == "remove":
            assert tree.remove(text, subscriber) is ((text, subscriber) in model)
            model.discard((text, subscriber))
        else:
            found = _match(tree, text)
            assert len(found) == len(set(found))
            assert set(found) == {s for f, s in model if matches(f, text)}
        assert len(tree) == len(model)
