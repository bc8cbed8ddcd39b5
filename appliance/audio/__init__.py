"""Where audio is decoded: PCM formats, conversion to 16 kHz mono, levels, WAV files, endpointing."""
