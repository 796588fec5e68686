"""Sentences for minivox: a tiny English-like grammar over fixed word lists, drawn from a seed.

Every voice reads the same kind of text (espeak pronounces it with its language's rules), so the
words carry no speaker information; sentences are unique across the whole corpus.
"""

from __future__ import annotations

import numpy as np

__all__ = ["make_sentences"]

_DETERMINERS = ("the", "a", "every", "one", "that", "this", "some", "my", "your", "our")
_ADJECTIVES = (
    "quiet", "yellow", "narrow", "heavy", "gentle", "bright", "ancient", "silver", "tired", "small",
    "open", "frozen", "golden", "hollow", "busy", "distant", "patient", "crooked", "warm", "empty",
    "wooden", "clever", "sudden", "rusty", "little", "sharp", "humble", "noisy", "pale", "proud",
)
_NOUNS = (
    "farmer", "basket", "bridge", "river", "window", "garden", "teacher", "engine", "lantern", "village",
    "doctor", "market", "mountain", "letter", "kitchen", "sailor", "forest", "hammer", "station", "candle",
    "painter", "ladder", "island", "wagon", "meadow", "harbor", "blanket", "tower", "pocket", "orchard",
    "baker", "kettle", "valley", "mirror", "student", "carpet", "shepherd", "trumpet", "castle", "bottle",
)
_VERBS = (
    "carried", "painted", "followed", "opened", "watched", "repaired", "counted", "borrowed", "found",
    "cleaned", "visited", "noticed", "wrapped", "lifted", "measured", "called", "pushed", "gathered",
    "remembered", "covered", "answered", "crossed", "finished", "ordered", "delivered", "described",
)
_PREPOSITIONS = ("across", "behind", "near", "under", "beside", "toward", "inside", "along", "beyond", "over")
_ADVERBS = ("slowly", "today", "again", "quickly", "carefully", "yesterday", "twice", "early", "softly", "later")
_CONJUNCTIONS = ("and", "while", "because", "so", "but", "before", "after", "until")


def _noun_phrase(rng: np.random.Generator) -> list[str]:
    words = [str(rng.choice(_DETERMINERS))]
    if rng.random() < 0.6:
        words.append(str(rng.choice(_ADJECTIVES)))
    words.append(str(rng.choice(_NOUNS)))
    return words


def _clause(rng: np.random.Generator) -> list[str]:
    words = _noun_phrase(rng) + [str(rng.choice(_VERBS))] + _noun_phrase(rng)
    if rng.random() < 0.5:
        words += [str(rng.choice(_PREPOSITIONS))] + _noun_phrase(rng)
    if rng.random() < 0.3:
        words.append(str(rng.choice(_ADVERBS)))
    return words


def _sentence(rng: np.random.Generator, num_words: int) -> str:
    words = _clause(rng)
    while len(words) < num_words:
        words += [str(rng.choice(_CONJUNCTIONS))] + _clause(rng)
    words = words[:num_words]
    return " ".join(words).capitalize() + "."


def make_sentences(seed: int, count: int, min_words: int, max_words: int) -> list[str]:
    """``count`` distinct sentences of ``min_words..max_words`` words, a function of ``seed`` alone."""
    if not 1 <= min_words <= max_words:
        raise ValueError(f"need 1 <= min_words={min_words} <= max_words={max_words}")
    rng = np.random.default_rng([seed, 4])
    sentences: list[str] = []
    seen: set[str] = set()
    attempts = 0
    while len(sentences) < count:
        attempts += 1
        if attempts > 20 * count + 1000:
            raise ValueError(f"cannot draw {count} distinct sentences of {min_words}..{max_words} words; "
                             "raise max_words")
        text = _sentence(rng, int(rng.integers(min_words, max_words + 1)))
        if text not in seen:
            seen.add(text)
            sentences.append(text)
    return sentences
