"""Speech-to-text: the engines (faster-whisper, Vosk) and the one decode queue per engine."""
