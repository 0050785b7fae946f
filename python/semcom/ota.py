"""Helpers of the over-the-air flowgraphs (grc/examples/ota/, docs/ota.md).

check_radio(driver, args): before a flowgraph builds its radio block, find the radio, or end
the program with one line that says what to do (UHD and SoapySDR otherwise print a C++
exception and a Python traceback). stop_when_received(tb, sink, count, idle_s): end a
receiving flowgraph once `count` images arrived, or when none came for `idle_s` seconds
after the first (a network or radio source never ends by itself).
"""

import threading
import time


def check_radio(driver: str, args: str, log=print):
    """driver "uhd" (args like "type=b200,serial=...") or "soapy" (args like "driver=hackrf").
    Raises SystemExit with one line when no such radio answers."""
    if driver == "uhd":
        from gnuradio import uhd
        try:   # open it once (uhd.find_devices is broken in Debian's GNU Radio 3.10.5 bindings)
            usrp = uhd.usrp_source(args, uhd.stream_args(cpu_format="fc32", channels=[0]))
        except Exception as exc:      # UHD's own failure ("No devices found for ..."), as one line
            raise SystemExit(f"no USRP found for device args {args!r}: connect one, or set the device args "
                             f"(e.g. type=b200 or addr=192.168.10.2) [{first_line(exc)}]") from None
        log(f"USRP: {usrp.get_usrp_info().get('mboard_id', 'found')}")
        del usrp
        return
    if driver == "soapy":
        try:
            import SoapySDR  # Debian: python3-soapysdr
        except ImportError:
            SoapySDR = None
        if SoapySDR is not None:
            if not SoapySDR.Device.enumerate(args):
                raise SystemExit(f"no SoapySDR device found for {args!r}: connect one, or set the device args "
                                 "(e.g. driver=hackrf; SoapySDRUtil --find lists them)")
            return
        from gnuradio import soapy
        try:   # without the Python bindings: open the device once through gr-soapy
            soapy.source(args, "fc32", 1, "", "", [""], [""])
        except Exception as exc:
            raise SystemExit(f"no SoapySDR device found for {args!r}: connect one, or set the device args "
                             f"(e.g. driver=hackrf; SoapySDRUtil --find lists them) [{first_line(exc)}]") from None
        return
    raise SystemExit(f"unknown radio driver {driver!r} (uhd or soapy)")


def first_line(exc) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def stop_when_received(tb, sink, count: int, idle_s: float = 10.0, poll_s: float = 0.2) -> threading.Thread:
    """Stop `tb` once `sink` (an image_sink) holds `count` images (count <= 0: never for
    that reason), or `idle_s` seconds after the last image arrived. Returns the watcher."""
    def watch():
        last, seen = None, 0
        while True:
            time.sleep(poll_s)
            n = sink.count()
            now = time.monotonic()
            if n != seen:
                seen, last = n, now
            if (count > 0 and n >= count) or (last is not None and now - last > idle_s):
                tb.stop()
                return
    watcher = threading.Thread(target=watch, name="stop_when_received", daemon=True)
    watcher.start()
    return watcher
