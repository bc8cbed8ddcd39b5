"""The household's words: names and terms Whisper would not guess ("bilge pump", "Freya", "the snug").

A person edits the list on the Voice page (or `hearth stt words`); device names and room names join
it by themselves. The engines read them as Whisper's prompt (appliance/stt/whisper.py). The list
lives in the registry database, so anything that learns a word (a person correcting a stored
transcript) adds to the same table with `add()`.

Limits: at most MAX_WORDS entries of at most MAX_CHARS characters each, printable, one line.
"""

from __future__ import annotations

import time

import sqlite_utils

from appliance.state.store import Store

MAX_WORDS = 100
MAX_CHARS = 40


class VocabularyError(ValueError):
    """A word or list the household cannot have; the message says the limit."""


def _vocabulary_0001(db: sqlite_utils.Database) -> None:
    db["stt_words"].create({"word": str, "added": float, "source": str}, pk="word", if_not_exists=True)


MIGRATIONS = [("stt_0001_words", _vocabulary_0001)]


def check_word(word: object) -> str:
    if not isinstance(word, str):
        raise VocabularyError("a word must be text")
    word = " ".join(word.split())
    if not word:
        raise VocabularyError("a word cannot be empty")
    if len(word) > MAX_CHARS:
        raise VocabularyError(f"a word or phrase is at most {MAX_CHARS} characters (this one has {len(word)})")
    if not word.isprintable() or any(c in word for c in "<>{}[]\\"):
        raise VocabularyError("a word may hold letters, digits, spaces and ordinary punctuation only")
    return word


def _wordlike(name: str) -> bool:
    """A name a person would say ("Kitchen speaker", "Freya's room"), not an id ("sat-07")."""
    return all(c.isalpha() or c in " '" for c in name)


class Vocabulary:
    def __init__(self, store: Store):
        self.store = store

    def words(self) -> list[str]:
        return [r["word"] for r in self.store.db.query("select word from stt_words order by added, word")]

    def replace(self, words: list[str], source: str = "person") -> list[str]:
        """The whole list at once (the Voice page's box): all checked before any is kept."""
        if not isinstance(words, list):
            raise VocabularyError("words must be a list")
        if len(words) > MAX_WORDS:
            raise VocabularyError(f"at most {MAX_WORDS} words (this list has {len(words)})")
        clean = list(dict.fromkeys(check_word(w) for w in words))
        now = time.time()
        with self.store.transaction() as db:
            db.execute("delete from stt_words")
            for i, word in enumerate(clean):
                db["stt_words"].insert({"word": word, "added": now + i * 1e-6, "source": source})
        return clean

    def add(self, word: str, source: str = "person") -> list[str]:
        word = check_word(word)
        have = self.words()
        if word in have:
            return have
        if len(have) >= MAX_WORDS:
            raise VocabularyError(f"the list is full ({MAX_WORDS} words): remove one first")
        with self.store.transaction() as db:
            db["stt_words"].insert({"word": word, "added": time.time(), "source": source})
        return self.words()

    def prompt_words(self, devices: list) -> list[str]:
        """What the engines read: the list, then device names and rooms (each once)."""
        named = [n for d in devices for n in (d.name, d.room) if n and _wordlike(n)]
        return list(dict.fromkeys([*self.words(), *named]))[:MAX_WORDS]
