"""Model zoo: converters and loaders for published super-resolution weights."""
