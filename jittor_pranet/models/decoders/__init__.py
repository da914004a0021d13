"""Decoder blocks: PraNet's RFB and aggregation, DSRA."""
