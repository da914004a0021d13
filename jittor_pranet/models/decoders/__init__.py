"""Decoders and their blocks: PraNet's RFB, aggregation and reverse-attention stages, EMCAD's, DSRA."""
