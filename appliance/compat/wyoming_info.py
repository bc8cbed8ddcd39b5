"""What Hearth answers to Wyoming's `describe`: its STT engine and model, its voices, its wake words."""

from __future__ import annotations

from wyoming.info import (AsrModel, AsrProgram, Attribution, Info, TtsProgram, TtsVoice, WakeModel,
                          WakeProgram)

HEARTH = Attribution(name="Hearth", url="")
ENGINE_ATTRIBUTION = {
    "faster-whisper": Attribution(name="SYSTRAN faster-whisper / OpenAI Whisper", url="https://github.com/SYSTRAN/faster-whisper"),
    "vosk": Attribution(name="Alpha Cephei Vosk", url="https://alphacephei.com/vosk/"),
}
PIPER = Attribution(name="Piper", url="https://github.com/rhasspy/piper")
OPENWAKEWORD = Attribution(name="openWakeWord", url="https://github.com/dscripka/openWakeWord")


def build_info(service, wake_models: list[str], version: str) -> Info:
    engine = service.engine
    stt = service.settings.stt
    asr = AsrProgram(
        name="hearth-stt", attribution=HEARTH, installed=True, version=version,
        description=f"Hearth speech to text ({engine.name})",
        models=[AsrModel(name=str(engine.model or engine.name),
                         attribution=ENGINE_ATTRIBUTION.get(engine.name, HEARTH), installed=True,
                         description=f"{engine.name} {engine.model}", version=None, languages=[stt.language])],
        supports_transcript_streaming=True,
    )
    tts = TtsProgram(
        name="hearth-tts", attribution=HEARTH, installed=True, version=version,
        description="Hearth text to speech (Piper)",
        voices=[TtsVoice(name=name, attribution=PIPER, installed=True, description=name, version=None,
                         languages=[info.language] if info.language else [])
                for name, info in sorted(service.voices.available.items())],
        supports_synthesize_streaming=True,
    )
    wake = []
    if wake_models:
        wake = [WakeProgram(
            name="hearth-wake", attribution=HEARTH, installed=True, version=version,
            description="Hearth wake word",
            models=[WakeModel(name=m, attribution=OPENWAKEWORD, installed=True, description=m, version=None,
                              languages=["en"], phrase=m.replace("_", " "))
                    for m in wake_models],
        )]
    return Info(asr=[asr], tts=[tts], wake=wake)
