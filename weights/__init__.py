"""Packaged weights (installed as ``adaaug._weights``): safetensors files, JSON cards, manifest.json."""
