"""Retention (privacy statement §14): data deleted when its basis ends, held while an authority
needs it, and the record of processing (GDPR Art. 30) generated from the data map."""
