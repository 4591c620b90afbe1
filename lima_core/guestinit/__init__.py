"""lima-init: what cloud-init does for Lima, for guests without cloud-init (see docs/authors.md)."""
