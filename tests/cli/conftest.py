"""The CLI fixtures (lima, driver_mode, fake_ssh, fake_template, instances, leftovers) live in
tests/conftest.py, shared with tests/faults."""
