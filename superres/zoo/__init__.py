"""Model zoo: the catalogue of named models, their converted-weight cache, and the loader."""

# The model used when none is named (API, batch jobs, CLI): general photos, x4.
DEFAULT_MODEL = "realesrgan-x4plus"
