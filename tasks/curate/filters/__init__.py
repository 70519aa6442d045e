"""Document filters of the curate step: each keeps a document or drops it with a reason."""
