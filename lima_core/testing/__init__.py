"""Testing support for lima-core and for driver authors.

- :mod:`lima_core.testing.conformance`: the driver conformance suite.
- :mod:`lima_core.testing.fakedriver`: a complete in-tree driver whose VM is a child process.
- :mod:`lima_core.testing.plugin`: the pytest plugin (``pytest --lima-driver NAME``).
- :mod:`lima_core.testing.boot`: the kit's boot check (a template booted to READY as ``lima start`` does).
- :mod:`lima_core.testing.publish`: a driver's wheel checked in a fresh virtualenv, before publishing.
"""
