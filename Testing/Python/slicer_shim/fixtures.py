"""Pytest fixtures and helpers shared by the tests that run the Slicer modules on Slicer's real
Python layer. A test module imports the ones it uses (``from slicer_shim.fixtures import ...``)
after checking :func:`slicer_shim.available`; each test module gets its own session."""

from __future__ import annotations

import time

import pytest

from . import startSession


@pytest.fixture(scope="module")
def session():
    started = startSession()
    yield started
    started.close()


@pytest.fixture(scope="module")
def L3Locator(session):
    return session.loadModule("L3Locator")


@pytest.fixture(scope="module")
def L3LocatorTraining(session, L3Locator):
    return session.loadModule("L3LocatorTraining")


@pytest.fixture
def makeWidget(session):
    """Build a module panel on an emptied scene; it is closed again after the test."""
    session.scene.Clear(0)
    made = []

    def make(module, name):
        widget = session.createWidget(module, name)
        made.append(widget)
        return widget

    yield make
    for widget in made:
        widget.exit()
        widget.cleanup()
        widget.parent.deleteLater()
    session.processEvents()


def waitFor(session, condition, seconds: float = 60.0) -> None:
    """Run Qt's event loop (timers fire) until ``condition()`` holds."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        session.processEvents()
        time.sleep(0.02)
