"""Words a person would write (issue 14 part 7): articles by sound, one name per object, no repeats."""
import pytest

from codec_assist.semantic.stream import compose_caption
from codec_assist.schemas import ShotFacts
from codec_assist.semantic.wording import distinct, indefinite, join_and, one_name, with_article


@pytest.mark.parametrize("noun, article", [
    ("unicycle", "a"), ("umbrella", "an"), ("hour", "an"), ("honest answer", "an"), ("European city", "a"),
    ("one-way street", "a"), ("uninvited guest", "an"), ("SUV", "an"), ("TV", "a"), ("MRI scanner", "an"),
    ("apple", "an"), ("horse cart", "a"), ("ox", "an"), ("8-bit game", "an"), ("university", "a"),
    ("urban street", "an"), ("user", "a"), ("ukulele", "a"), ("", "a")])
def test_article_by_sound(noun, article):
    assert indefinite(noun) == article


def test_one_name_distinct_and_join():
    assert one_name("horse cart, jinrikisha") == "horse cart"
    assert one_name("minivan") == "minivan"
    assert distinct(["limousine", "minivan", "limousine", "cab", "sports car", "car"]) == \
        ["limousine", "minivan", "cab", "sports car"]
    assert join_and(["a"]) == "a" and join_and(["a", "b", "c"]) == "a, b and c"
    assert with_article("unicycle") == "a unicycle"


def test_caption_from_merged_imagenet_labels_reads_well():
    f = ShotFacts(start=0, end=10, caption="", objects=["unicycle", "umbrella"], motion="fast")
    assert compose_caption(f) == "A unicycle and an umbrella with fast motion."
