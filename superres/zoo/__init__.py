"""Model zoo: the catalogue of named models, their converted-weight cache, and the loader."""
