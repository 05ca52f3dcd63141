"""InternTable: one shared value per key, with bounded memory."""

from exporter.interning import InternTable


def test_a_value_is_made_once_and_shared_after():
    made = []

    def make(key):
        made.append(key)
        return [key]

    table = InternTable(make, 10)
    first = table["a"]
    assert table["a"] is first and made == ["a"]
    assert table["b"] == ["b"] and made == ["a", "b"]


def test_when_full_it_starts_again_and_values_handed_out_stay_valid():
    table = InternTable(lambda key: [key], 3)
    kept = [table[key] for key in "abc"]
    assert len(table) == 3
    d = table["d"]  # full: cleared first
    assert len(table) == 1 and d == ["d"]
    assert kept == [["a"], ["b"], ["c"]]
    assert table["a"] is not kept[0] and table["a"] == kept[0]


def test_share_holds_the_first_value_given_for_a_key():
    table = InternTable(None, 2)
    first = {"x": 1, "y": 2}
    assert table.share("k", first) is first
    assert table.share("k", {"y": 2, "x": 1}) is first
    table.share("l", {})
    table.share("m", {})  # full: cleared first
    assert table.share("k", {"z": 3}) == {"z": 3}
