"""Chinese language understanding for Kefu: text normalisation and the spaCy
catalogue pipeline (product / category / city entities). See PIPELINE.md."""
