"""HTTP edge of the files service: one module per concept (see ``routes``)."""
