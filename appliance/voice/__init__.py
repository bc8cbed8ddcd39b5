"""The voice pipeline's path through the box: where audio and every device message enter
(`inbound.py`), the speech-to-text sessions with endpointing and speculative decodes
(`sessions.py`), fair shares between clients and the audio rate guard (`shares.py`), where every
reply leaves (`outbound.py`), and the household's opt-in training data (`utterances.py`).

The engines it drives are rooms of their own beside it: `appliance/audio` (PCM, decoding, VAD
endpointing, turn ends), `appliance/stt`, `appliance/tts` and `appliance/wake`.
"""
