"""Text-to-speech: Piper voices, the phrase cache and the speaker worker that streams replies."""
