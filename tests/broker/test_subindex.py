"""The broker's topic-filter trie against the project's reference matcher (MQTT section 4.7)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from broker.subindex import FilterIndex
from twin.core.topics import matches

LEVELS = st.sampled_from(["a", "b", "", "$SYS", "medtwin", "x"])
TOPICS = st.lists(LEVELS, min_size=1, max_size=4).map("/".join)


@st.composite
def filters(draw: st.DrawFn) -> str:
    levels = draw(st.lists(st.one_of(LEVELS, st.just("+")), min_size=1, max_size=4))
    if draw(st.booleans()):
        levels.append("#")
    return "/".join(levels)


@given(st.lists(filters(), max_size=12), st.lists(TOPICS, min_size=1, max_size=6))
def test_the_trie_finds_exactly_the_filters_that_match(subscribed: list[str],
                                                       topics: list[str]) -> None:
    index = FilterIndex()
    for f in subscribed:
        index.add(f)
    for topic in topics:
        assert sorted(index.match(topic)) == sorted({f for f in subscribed if matches(f, topic)})


@given(st.lists(filters(), min_size=1, max_size=12), st.data())
def test_removing_filters_forgets_them_and_only_them(subscribed: list[str],
                                                     data: st.DataObject) -> None:
    index = FilterIndex()
    for f in subscribed:
        index.add(f)
    gone = set(data.draw(st.lists(st.sampled_from(subscribed))))
    for f in gone:
        index.remove(f)
    index.remove("never/subscribed")
    kept = set(subscribed) - gone
    assert len(index) == len(kept)
    for topic in ["a", "a/b", "$SYS/a", "medtwin/x/a", "/a", "a//b"]:
        assert sorted(index.match(topic)) == sorted(f for f in kept if matches(f, topic))


def test_hash_matches_the_parent_level_and_wildcards_skip_system_topics() -> None:
    index = FilterIndex()
    for f in ("a/#", "#", "+/b", "$SYS/#"):
        index.add(f)
    assert sorted(index.match("a")) == ["#", "a/#"]  # MQTT 4.7.1.2
    assert sorted(index.match("$SYS/b")) == ["$SYS/#"]  # MQTT-4.7.2-1
    assert sorted(index.match("x/b")) == ["#", "+/b"]
