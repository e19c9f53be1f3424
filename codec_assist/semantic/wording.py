"""Words a person would write (issue 14, part 7): articles by sound, one name per thing, no repeats.

Used by the semantic stream's captions (semantic.py) and anything else that turns tokens into a sentence.
"""
from __future__ import annotations

import re

# Vowel letters that sound like a consonant ("a unicycle", "a European", "a one-way street") and silent h
# ("an hour"); checked on the word's start, lower case.
_CONSONANT_SOUND = ("uni", "use", "usu", "uti", "uri", "ure", "uro", "eu", "ewe", "one ", "one-", "once", "ouija",
                    "ukulele", "uganda", "ufo", "uk ")
_VOWEL_SOUND = ("hour", "honest", "honor", "honour", "heir", "herb")  # silent h
_CONSONANT_EXCEPTIONS = ("unin", "unim", "unid")  # "an uninvited", "an unusual" (not "uni-")
_LETTER_VOWEL = set("aefhilmnorsx")  # initialisms said letter by letter: "an MRI", "an SUV", "a TV"


def indefinite(noun: str) -> str:
    """'a' or 'an' by how the noun is said, not how it is spelled: a unicycle, an umbrella, an hour, an SUV."""
    word = noun.strip()
    if not word:
        return "a"
    first = word.split()[0]
    if len(first) > 1 and first.isupper() and first.isalpha():  # an initialism: by its first letter's name
        return "an" if first[0].lower() in _LETTER_VOWEL else "a"
    w = word.lower() + " "
    if w.startswith(_VOWEL_SOUND):
        return "an"
    if w.startswith(_CONSONANT_SOUND) and not w.startswith(_CONSONANT_EXCEPTIONS):
        return "a"
    if w[0].isdigit():
        return "an" if w[0] == "8" or re.match(r"(11|18)(\D|$)", w) else "a"
    return "an" if w[0] in "aeiou" else "a"


def with_article(noun: str) -> str:
    return f"{indefinite(noun)} {noun.strip()}"


def one_name(label: str) -> str:
    """One name for a thing whose label lists alternatives ('horse cart, jinrikisha' -> 'horse cart'): the
    first is the classifier's most likely one; the others are synonyms or runner-up guesses for the same blob."""
    return label.split(",")[0].strip()


def distinct(names: list[str]) -> list[str]:
    """Names in order, dropping repeats and any name sharing a word with an earlier one ('car' after
    'sports car'), so a sentence never says the same word twice."""
    out: list[str] = []
    said: set[str] = set()
    for n in names:
        words = set(n.lower().split())
        if not n or not words or words & said:
            continue
        out.append(n)
        said |= words
    return out


def join_and(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
