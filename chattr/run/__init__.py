"""Running chattr: assembling its parts, serving them under uvicorn, the Hugging Face Space."""
