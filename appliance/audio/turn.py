"""End of turn: how much silence ends this utterance, judged from its words, the VAD and the device.

A fixed silence is a bad compromise: 300 ms cuts off "set a timer for … ten minutes" and still
makes "turn off the kitchen light." wait 300 ms for nothing. The systems people hold up decide
from more than silence: AssemblyAI's streaming turn detection ends a turn after a short silence
when the transcript ends in terminal punctuation and waits up to a longer one otherwise (its
min/max turn silence); LiveKit's and Pipecat's detectors score the words (or the audio) and move
the wait between a min and a max delay. Hearth has a speculative transcript of everything said so
far at the first silence anyway (appliance/voice/sessions.py), so it judges that:

- complete (a finished sentence or command: terminal punctuation, not ending on a dangling word
  such as "for", "to", "the", "and", nor trailing off with "...") -> `commit_silence_ms`;
- unfinished -> `max_silence_ms`;
- nothing to judge (empty text, turn detection off, a streaming engine) -> `silence_ms`, the
  fixed rule.

The VAD's own confidence and the device's hint are applied by the endpointer and the session
(appliance/audio/endpoint.py, appliance/voice/sessions.py); see docs/config.md [endpoint].

A rule, not a model, for now: LiveKit's text turn detector loads its weights from a model hub
at run time, which Hearth may not do. Pipecat's smart-turn v3 (an 8 MB int8 ONNX classifier on a
Whisper-tiny encoder, from the audio alone) ships inside the pipecat-ai wheel, but it would add
pipecat-ai and transformers and a second encoder pass on the same 2 cores, on the path this rule
is meant to shorten: worth measuring as a follow-up. The word lists are English: a session in
another language is not judged (the fixed rule, or the device's hint, applies).
"""

from __future__ import annotations

import re

from appliance.state.config import EndpointSettings

# Words a finished English sentence or command does not end on. A word wrongly listed only costs
# that utterance the longer wait; one missing cuts a person off. Particles that do end commands
# ("turn it on", "turn the music down", "log out") and short answers ("yes I can", "call her",
# "no") are not here.
# Prepositions are here even though a question may end on one ("what is it for?"): people rarely
# ask a voice assistant that, and "what's the weather in?" is how a pause before a place sounds.
DANGLING = frozenset("""
    a an the my your our their every each
    for to of with at from by into onto about than as via per toward towards until till between in
    before during
    and or but nor because if although unless whether
    um uh er erm hmm what's
""".split())
# ... and these unless the sentence is a question: "why?", "can I?"
DANGLING_UNLESS_ASKED = frozenset("i what which who whom whose where how why".split())

# Whisper finishes a sentence cut off after a preposition or particle with a short word that was
# never said: "Set a timer for" -> "Set a timer for it.", "Turn on the" -> "Turn on that.",
# "Remind me to" -> "Remind me too." (tiny.en on Piper, espeak-ng and Festival fragments). Such a
# word after a function word does not make the sentence complete ("go for it" waits the long silence).
# A trailing "for" is also heard as a number: "Set a timer for" -> "Set a tie with 4th.", "... for 4."
# (tiny.en on espeak-ng), so "four" after a function word waits too ("a table for four" waits the long
# silence: the price of a word wrongly listed).
GUESSED_TAIL = frozenset("it that this them these those too 4 4th four fourth".split())
_PARTICLES = frozenset("on off up down out over back away around me us you".split())

_TERMINAL = re.compile(r"[.?!]['\")\]]*$")
_QUESTION = re.compile(r"\?['\")\]]*$")
_TRAILING_OFF = re.compile(r"(\.\.\.|…|-|—|,|;|:)['\")\]]*$")
_WORD = re.compile(r"[a-z0-9']+")


def complete(text: str) -> bool | None:
    """Does this transcript sound finished? None: cannot tell (no words, or no terminal punctuation
    on a last word that may or may not end it: Whisper punctuates what it takes for a sentence)."""
    text = text.strip()
    words = _WORD.findall(text.lower().replace("’", "'"))
    if not words:
        return None
    if _TRAILING_OFF.search(text):         # "Set a timer for..." / "the lights in the -"
        return False
    last = words[-1]
    if last in DANGLING or (last in DANGLING_UNLESS_ASKED and not _QUESTION.search(text)):
        return False
    if last in GUESSED_TAIL and len(words) > 1 and _function_word(words[-2]):
        return False
    if not _TERMINAL.search(text):
        return None                        # no full stop, nothing dangling: the fixed rule decides
    return True


def _function_word(word: str) -> bool:
    return word in DANGLING or word in DANGLING_UNLESS_ASKED or word in _PARTICLES


def wait_ms(settings: EndpointSettings, text: str | None, hint: str = "auto") -> int:
    """Silence (as the VAD counts it) that ends this utterance.

    `hint` is the device's (stt/start `turn`): "auto" judges the words, "eager" commits on the short
    silence without waiting for them (a yes/no answer), "patient" always waits the long one (a
    message, a list). `text` None: the words are not known (yet)."""
    short, long = commit_ms(settings), max_ms(settings)
    if hint == "eager":
        return short
    if hint == "patient":
        return long
    if not settings.turn_detection or text is None:
        return settings.silence_ms
    verdict = complete(text)
    if verdict is None:
        return settings.silence_ms
    return short if verdict else long


def commit_ms(settings: EndpointSettings) -> int:
    """The short wait never exceeds `silence_ms`: someone who set a short silence gets it everywhere."""
    return min(settings.commit_silence_ms, settings.silence_ms)


def max_ms(settings: EndpointSettings) -> int:
    """The long wait is never shorter than `silence_ms`."""
    return max(settings.max_silence_ms, settings.silence_ms)
