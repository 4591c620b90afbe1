"""Fakes of the pyobjc basics that :mod:`.fakevz` builds on: objects made with alloc/init,
errors, and the Foundation, libdispatch, AppKit and Quartz names lima-driver-vz calls."""

from __future__ import annotations

import threading
import time
import types
from collections.abc import Callable
from typing import Any


class FakeError:
    def __init__(self, message: str) -> None:
        self.message = message

    def localizedDescription(self) -> str:  # noqa: N802 - pyobjc name
        return self.message

    def __repr__(self) -> str:
        return f"FakeError({self.message!r})"


class FakeObject:
    """alloc/init, declared properties, and a record of how the object was made."""

    PROPERTIES: tuple[str, ...] = ()
    #: the fakevz.World shared by the objects of one bindings() call
    world: Any

    def __init__(self) -> None:
        self.props: dict[str, Any] = {}
        self.initializer: tuple[str, tuple[Any, ...]] | None = None

    @classmethod
    def alloc(cls) -> Any:
        return cls()

    @classmethod
    def new(cls) -> Any:
        return cls.alloc().init()

    def _made(self, selector: str, *args: Any) -> Any:
        self.initializer = (selector, args)
        return self

    def init(self) -> Any:
        return self._made("init")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("set") and name.endswith("_") and len(name) > 4:
            stem = name[3:-1]
            for prop in self.PROPERTIES:
                if prop[0].upper() + prop[1:] == stem:
                    return lambda value: self.props.__setitem__(prop, value)
        elif name in self.PROPERTIES:
            return lambda: self.props.get(name)
        raise AttributeError(f"{type(self).__name__} has no selector {name!r}")


# -- Foundation -------------------------------------------------------------------------------


class NSURL(FakeObject):
    @classmethod
    def fileURLWithPath_(cls, path: str) -> NSURL:  # noqa: N802
        url = cls()
        url._path = str(path)
        return url._made("fileURLWithPath:", str(path))

    def path(self) -> str:
        return self._path


class NSDate(FakeObject):
    @classmethod
    def dateWithTimeIntervalSinceNow_(cls, seconds: float) -> NSDate:  # noqa: N802
        date = cls()
        date.seconds = seconds
        return date


class NSMutableData(bytearray):
    @classmethod
    def data(cls) -> NSMutableData:
        return cls()


# -- libdispatch ----------------------------------------------------------------------------------


class FakeQueue:
    """A serial queue: blocks run one at a time, in the caller's thread."""

    def __init__(self, label: bytes) -> None:
        self.label = label
        self._lock = threading.RLock()
        self._owner: int | None = None

    def held(self) -> bool:
        return self._owner == threading.get_ident()

    def run(self, block: Callable[[], None]) -> None:
        with self._lock:
            outer, self._owner = self._owner, threading.get_ident()
            try:
                block()
            finally:
                self._owner = outer


_MAIN_QUEUE = FakeQueue(b"com.apple.main-thread")


def _libdispatch() -> types.SimpleNamespace:
    return types.SimpleNamespace(
        DISPATCH_QUEUE_SERIAL=None,
        dispatch_queue_create=lambda label, attr: FakeQueue(label),
        dispatch_sync=lambda queue, block: queue.run(block),
        dispatch_get_main_queue=lambda: _MAIN_QUEUE,
    )


# -- AppKit and Quartz (the window and screenshots) -------------------------------------------------


class NSApplication(FakeObject):
    """The shared application. Like AppKit's, it only activates (and so lets a window become key) once
    ``finishLaunching`` has run: ``run()`` calls it, a hand-written event loop must."""

    PROPERTIES = ("activationPolicy",)
    _shared: NSApplication | None = None

    def __init__(self) -> None:
        super().__init__()
        self.launched = 0
        self.active = False

    @classmethod
    def sharedApplication(cls) -> NSApplication:  # noqa: N802
        if cls._shared is None:
            cls._shared = cls()
            cls.world.application = cls._shared
        return cls._shared

    def setActivationPolicy_(self, policy: int) -> bool:  # noqa: N802
        self.props["activationPolicy"] = policy
        return True

    def finishLaunching(self) -> None:  # noqa: N802
        self.launched += 1

    def activateIgnoringOtherApps_(self, flag: bool) -> None:  # noqa: N802
        # A process without a bundle is a background app until its policy is Regular (0); it cannot be
        # activated before it has finished launching.
        self.active = bool(flag) and self.launched > 0 and self.props.get("activationPolicy") == 0

    def isActive(self) -> bool:  # noqa: N802
        return self.active

    def nextEventMatchingMask_untilDate_inMode_dequeue_(self, mask: int, date: NSDate, mode: str,  # noqa: N802
                                                         dequeue: bool) -> None:
        time.sleep(min(date.seconds, 0.02))
        return None

    def sendEvent_(self, event: Any) -> None:  # noqa: N802
        pass

    def updateWindows(self) -> None:  # noqa: N802
        pass


class NSWindow(FakeObject):
    PROPERTIES = ("contentView", "title", "releasedWhenClosed")
    TITLED = 1

    def initWithContentRect_styleMask_backing_defer_(self, rect: Any, style: int, backing: int,  # noqa: N802
                                                     defer: bool) -> Any:
        self.visible = False
        self.style = style
        self.ordered_key = False
        self.first_responder: Any = None
        return self._made("initWithContentRect:styleMask:backing:defer:", rect, style, backing, defer)

    def center(self) -> None:
        pass

    def canBecomeKeyWindow(self) -> bool:  # noqa: N802
        return bool(self.style & self.TITLED)

    def makeKeyAndOrderFront_(self, sender: Any) -> None:  # noqa: N802
        self.visible = True
        self.ordered_key = True
        self.world.calls.append(f"window shown: {self.props.get('title')}")

    def isKeyWindow(self) -> bool:  # noqa: N802
        """Key: asked to be, able to be, and its application is active (see NSApplication)."""
        app = self.world.application
        return self.visible and self.ordered_key and self.canBecomeKeyWindow() and app is not None and app.isActive()

    def makeFirstResponder_(self, responder: Any) -> bool:  # noqa: N802
        self.first_responder = responder
        return True

    def firstResponder(self) -> Any:  # noqa: N802
        return self.first_responder

    def orderOut_(self, sender: Any) -> None:  # noqa: N802
        self.visible = False

    def isVisible(self) -> bool:  # noqa: N802
        return self.visible

    def windowNumber(self) -> int:  # noqa: N802
        return 42


def _quartz() -> types.SimpleNamespace:
    def finalize(destination: dict) -> bool:
        destination["data"].extend(b"\x89PNG fake" if destination["uti"] == "public.png" else b"BM fake")
        return True

    return types.SimpleNamespace(
        CGRectNull=None, kCGWindowListOptionIncludingWindow=8, kCGWindowImageBoundsIgnoreFraming=1,
        kCGWindowImageShouldBeOpaque=2,
        CGWindowListCreateImage=lambda rect, option, number, flags: {"window": number},
        CGImageDestinationCreateWithData=lambda data, uti, count, opts: {"data": data, "uti": uti},
        CGImageDestinationAddImage=lambda destination, image, props: None,
        CGImageDestinationFinalize=finalize,
    )
