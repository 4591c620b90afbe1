"""The VM's window (``run_gui``) and screenshots of it (``capture_screenshot``).

AppKit wants the process's main thread: :func:`run_window` refuses to run
anywhere else. It opens a 1920x1200 window titled ``Lima: <name>`` holding a
``VZVirtualMachineView`` and pumps AppKit events until the VM has stopped.
Closing the window asks the guest to power off, as a power button would.

The event loop is our own (``nextEventMatchingMask...`` and ``sendEvent_``)
rather than ``NSApplication.run``, so it does what ``run`` does first: the
process becomes a regular app (it has no bundle, so it starts as a
background one) and ``finishLaunching`` is called once, without which the
app is never activated and its window never becomes key. The view is made
the window's first responder, so keystrokes reach the guest. The view's
``automaticallyReconfiguresDisplay`` exists from macOS 14 and is set where
it exists.

Screenshots capture that window with ``CGWindowListCreateImage`` and encode
it with ImageIO (PNG, or BMP on request), on the main queue, which the event
loop of :func:`run_window` keeps serviced.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from lima_core.errors import DriverError, NoDisplay

from . import Bindings
from .machine import Machine

#: the open window per Machine (by id), for screenshots
_windows: dict[int, Any] = {}
#: the NSApplication objects finishLaunching was called on (once per process, but tests make several)
_launched: set[int] = set()
_lock = threading.Lock()

NS_WINDOW_STYLE = 1 | 2 | 4 | 8  # titled, closable, miniaturizable, resizable
NS_BACKING_STORE_BUFFERED = 2
NS_ACTIVATION_POLICY_REGULAR = 0
NS_EVENT_MASK_ANY = (1 << 64) - 1
EVENT_WAIT = 0.2
UTI = {"png": "public.png", "bmp": "com.microsoft.bmp"}


def run_window(b: Bindings, machine: Machine, title: str, size: tuple[int, int],
               running: Callable[[], bool]) -> None:
    """Show the VM in a window until *running* turns false; main thread only."""
    if threading.current_thread() is not threading.main_thread():
        raise DriverError("the vz window must run on the process's main thread; the host agent's --run-gui "
                          "mode provides it (an external driver serves hooks on worker threads)")
    appkit, foundation, vz = b.AppKit, b.Foundation, b.Virtualization
    app = appkit.NSApplication.sharedApplication()
    app.setActivationPolicy_(NS_ACTIVATION_POLICY_REGULAR)
    with _lock:
        launch = id(app) not in _launched
        _launched.add(id(app))
    if launch:
        app.finishLaunching()
    frame = foundation.NSMakeRect(0, 0, *size)
    window = appkit.NSWindow.alloc().initWithContentRect_styleMask_backing_defer_(
        frame, NS_WINDOW_STYLE, NS_BACKING_STORE_BUFFERED, False)
    view = vz.VZVirtualMachineView.alloc().initWithFrame_(frame)
    view.setVirtualMachine_(machine.vm)
    view.setCapturesSystemKeys_(True)
    if hasattr(view, "setAutomaticallyReconfiguresDisplay_"):
        view.setAutomaticallyReconfiguresDisplay_(True)
    window.setContentView_(view)
    window.makeFirstResponder_(view)
    window.setTitle_(title)
    window.setReleasedWhenClosed_(False)
    window.center()
    window.makeKeyAndOrderFront_(None)
    app.activateIgnoringOtherApps_(True)
    with _lock:
        _windows[id(machine)] = window
    asked_to_stop = False
    try:
        while running():
            event = app.nextEventMatchingMask_untilDate_inMode_dequeue_(
                NS_EVENT_MASK_ANY, foundation.NSDate.dateWithTimeIntervalSinceNow_(EVENT_WAIT),
                foundation.NSDefaultRunLoopMode, True)
            if event is not None:
                app.sendEvent_(event)
            app.updateWindows()
            if not window.isVisible() and not asked_to_stop:
                asked_to_stop = True
                if machine.can_request_stop():
                    machine.request_stop()
    finally:
        with _lock:
            _windows.pop(id(machine), None)
        window.orderOut_(None)


def capture(b: Bindings, machine: Machine | None, fmt: str) -> bytes:
    """The window's pixels as PNG or BMP; NoDisplay when no window is open in this process."""
    with _lock:
        window = _windows.get(id(machine)) if machine is not None else None
    if window is None:
        raise NoDisplay("the vz VM has no window open in this process (run it with video.display vz and the GUI)")
    quartz, foundation = b.Quartz, b.Foundation
    uti = UTI.get(fmt or "png", UTI["png"])
    out: list[bytes] = []

    def grab() -> None:
        image = quartz.CGWindowListCreateImage(
            quartz.CGRectNull, quartz.kCGWindowListOptionIncludingWindow, window.windowNumber(),
            quartz.kCGWindowImageBoundsIgnoreFraming | quartz.kCGWindowImageShouldBeOpaque)
        if image is None:
            return
        data = foundation.NSMutableData.data()
        destination = quartz.CGImageDestinationCreateWithData(data, uti, 1, None)
        if destination is None:
            return
        quartz.CGImageDestinationAddImage(destination, image, None)
        if quartz.CGImageDestinationFinalize(destination):
            out.append(bytes(data))

    if threading.current_thread() is threading.main_thread():
        grab()
    else:
        b.libdispatch.dispatch_sync(b.libdispatch.dispatch_get_main_queue(), grab)
    if not out or not out[0]:
        raise DriverError("the screenshot returned no data; the VM window may not be visible")
    return out[0]
