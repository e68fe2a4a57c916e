"""Fakes of the ports used only by the tests: small in-memory classes with something
to look at. The in-memory adapters the embedded mode runs on stay in adapters/memory/."""
