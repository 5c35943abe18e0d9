"""What a written plot must be."""


def png_ok(path) -> bool:
    """A non-empty image with the PNG signature that matplotlib can read."""
    import matplotlib.image

    data = path.read_bytes()
    return data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000 and matplotlib.image.imread(path).ndim == 3
