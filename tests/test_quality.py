import pandas as pd
import pytest

from faithdpo.quality import is_degenerate, quality_table


def test_quality_columns():
    table = quality_table(pd.Series(["Anna King wins the vote .", "", "the vote the vote the vote the vote"]),
                          pd.Series(["Anna King wins the vote .", "Anna King wins .", "Anna King wins ."]))
    assert table.loc[0, "rouge1"] == pytest.approx(1.0) and table.loc[0, "rougeL"] == pytest.approx(1.0)
    assert table.loc[1, "rouge1"] == 0.0
    assert list(table["words"]) == [5, 0, 8]
    assert list(table["empty"]) == [False, True, False]
    assert list(table["degenerate"]) == [False, False, True]


def test_degenerate_means_a_trigram_three_times():
    assert not is_degenerate("a b c a b c")
    assert is_degenerate("a b c a b c a b c")
    assert not is_degenerate("")
